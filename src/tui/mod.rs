//! The dashboard: state, event loop, layout and panels (ratatui + crossterm).
