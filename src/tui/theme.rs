//! Colours and characters: one [`Theme`] decides every style and glyph the panels use, so
//! `NO_COLOR`, `--no-color`, the 16-colour palette and `--ascii` are handled in one place and
//! no panel picks a colour or a box character on its own.

use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::border;

use crate::config::{ColorMode, ThemeName, UiConfig};

/// The user's colour and character choices, resolved from the config, the flags and the
/// environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThemeChoice {
    /// Whether colours are drawn at all.
    pub color: bool,
    /// Which palette, when colours are on.
    pub name: ThemeName,
    /// ASCII characters only.
    pub ascii: bool,
}

impl ThemeChoice {
    /// Resolves the choice: `--no-color` and a non-empty `NO_COLOR` turn colour off unless the
    /// config says `always`; `--ascii` or `ui.ascii` select ASCII characters.
    pub fn resolve(
        ui: &UiConfig,
        no_color_flag: bool,
        ascii_flag: bool,
        no_color_env: Option<&str>,
    ) -> Self {
        let env_off = no_color_env.is_some_and(|v| !v.is_empty());
        let color = match ui.color {
            ColorMode::Never => false,
            ColorMode::Always => !no_color_flag,
            ColorMode::Auto => !no_color_flag && !env_off,
        };
        Self {
            color,
            name: ui.theme,
            ascii: ui.ascii || ascii_flag,
        }
    }
}

/// Severity of a value, which picks its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Nothing to notice.
    Normal,
    /// Healthy and worth a glance (e.g. a running job).
    Good,
    /// Needs attention (power cap, hot, nearly full).
    Warn,
    /// Something is wrong (lost GPU, thermal slowdown, errors).
    Critical,
    /// Not interesting right now (idle, N/A).
    Dim,
}

/// Every style and glyph the dashboard draws with.
#[derive(Debug, Clone)]
pub struct Theme {
    /// The resolved choice this theme was built from.
    pub choice: ThemeChoice,
    palette: Palette,
}

#[derive(Debug, Clone, Copy)]
struct Palette {
    accent: Color,
    good: Color,
    warn: Color,
    critical: Color,
    dim: Color,
    own: Color,
    selection_bg: Color,
    gauge: Color,
}

const DARK: Palette = Palette {
    accent: Color::Indexed(75),
    good: Color::Indexed(114),
    warn: Color::Indexed(214),
    critical: Color::Indexed(203),
    dim: Color::Indexed(244),
    own: Color::Indexed(180),
    selection_bg: Color::Indexed(238),
    gauge: Color::Indexed(79),
};

const LIGHT: Palette = Palette {
    accent: Color::Indexed(25),
    good: Color::Indexed(28),
    warn: Color::Indexed(130),
    critical: Color::Indexed(160),
    dim: Color::Indexed(245),
    own: Color::Indexed(90),
    selection_bg: Color::Indexed(253),
    gauge: Color::Indexed(30),
};

const BASIC: Palette = Palette {
    accent: Color::Cyan,
    good: Color::Green,
    warn: Color::Yellow,
    critical: Color::Red,
    dim: Color::DarkGray,
    own: Color::Magenta,
    selection_bg: Color::Blue,
    gauge: Color::Green,
};

/// Sparkline levels, lowest first.
const SPARK_UNICODE: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
const SPARK_ASCII: [char; 8] = ['_', '.', ',', ':', '-', '=', '+', '#'];

const ASCII_BORDER: border::Set<'static> = border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

impl Theme {
    /// The theme for a resolved choice.
    pub fn new(choice: ThemeChoice) -> Self {
        let palette = match choice.name {
            ThemeName::Dark => DARK,
            ThemeName::Light => LIGHT,
            ThemeName::Basic => BASIC,
        };
        Self { choice, palette }
    }

    fn fg(&self, color: Color) -> Style {
        if self.choice.color {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    /// Style of a value at `level`. Without colour, warnings and errors stay visible through
    /// bold and reverse video.
    pub fn level(&self, level: Level) -> Style {
        let p = self.palette;
        match (self.choice.color, level) {
            (_, Level::Normal) => Style::new(),
            (true, Level::Good) => self.fg(p.good),
            (true, Level::Warn) => self.fg(p.warn).add_modifier(Modifier::BOLD),
            (true, Level::Critical) => self.fg(p.critical).add_modifier(Modifier::BOLD),
            (true, Level::Dim) => self.fg(p.dim),
            (false, Level::Good) => Style::new(),
            (false, Level::Warn) => Style::new().add_modifier(Modifier::BOLD),
            (false, Level::Critical) => {
                Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED)
            }
            (false, Level::Dim) => Style::new().add_modifier(Modifier::DIM),
        }
    }

    /// Labels and titles.
    pub fn label(&self) -> Style {
        self.fg(self.palette.accent)
    }

    /// Title of the focused panel, and its border.
    pub fn focused_border(&self) -> Style {
        self.fg(self.palette.accent).add_modifier(Modifier::BOLD)
    }

    /// Border of a panel without focus.
    pub fn border(&self) -> Style {
        self.fg(self.palette.dim)
    }

    /// The selected row.
    pub fn selection(&self) -> Style {
        if self.choice.color {
            Style::new()
                .bg(self.palette.selection_bg)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    /// Processes that belong to the viewer.
    pub fn own_process(&self) -> Style {
        self.fg(self.palette.own).add_modifier(Modifier::BOLD)
    }

    /// The filled part of gauges and sparklines.
    pub fn gauge(&self) -> Style {
        self.fg(self.palette.gauge)
    }

    /// The REPLAY marker in the header.
    pub fn replay_marker(&self) -> Style {
        if self.choice.color {
            Style::new()
                .fg(Color::Black)
                .bg(self.palette.warn)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }

    /// Box characters for panel borders.
    pub fn border_set(&self) -> border::Set<'static> {
        if self.choice.ascii {
            ASCII_BORDER
        } else {
            border::ROUNDED
        }
    }

    /// Filled and empty cells of a horizontal gauge.
    pub fn gauge_chars(&self) -> (char, char) {
        if self.choice.ascii {
            ('#', '.')
        } else {
            ('█', '░')
        }
    }

    /// Sparkline levels, lowest first.
    pub fn spark_levels(&self) -> &'static [char; 8] {
        if self.choice.ascii {
            &SPARK_ASCII
        } else {
            &SPARK_UNICODE
        }
    }

    /// Degree sign for temperatures (`°C` or plain `C`).
    pub fn celsius(&self) -> &'static str {
        if self.choice.ascii {
            "C"
        } else {
            "°C"
        }
    }

    /// Markers for ascending and descending sort.
    pub fn sort_arrows(&self) -> (&'static str, &'static str) {
        if self.choice.ascii {
            ("^", "v")
        } else {
            ("▲", "▼")
        }
    }

    /// Separator between header items.
    pub fn separator(&self) -> &'static str {
        if self.choice.ascii {
            " | "
        } else {
            " │ "
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ui(color: ColorMode) -> UiConfig {
        UiConfig {
            color,
            ..UiConfig::default()
        }
    }

    #[test]
    fn no_color_env_turns_colour_off_only_when_non_empty() {
        assert!(!ThemeChoice::resolve(&ui(ColorMode::Auto), false, false, Some("1")).color);
        assert!(ThemeChoice::resolve(&ui(ColorMode::Auto), false, false, Some("")).color);
        assert!(ThemeChoice::resolve(&ui(ColorMode::Auto), false, false, None).color);
    }

    #[test]
    fn no_color_flag_beats_always_and_never_beats_everything() {
        assert!(!ThemeChoice::resolve(&ui(ColorMode::Always), true, false, None).color);
        assert!(ThemeChoice::resolve(&ui(ColorMode::Always), false, false, Some("1")).color);
        assert!(!ThemeChoice::resolve(&ui(ColorMode::Never), false, false, None).color);
    }

    #[test]
    fn colourless_theme_uses_no_colours_at_all() {
        let choice = ThemeChoice::resolve(&ui(ColorMode::Never), false, false, None);
        let theme = Theme::new(choice);
        for style in [
            theme.level(Level::Critical),
            theme.level(Level::Warn),
            theme.label(),
            theme.selection(),
            theme.own_process(),
            theme.gauge(),
            theme.replay_marker(),
        ] {
            assert_eq!(style.fg, None);
            assert_eq!(style.bg, None);
        }
    }

    #[test]
    fn basic_theme_uses_only_the_sixteen_ansi_colours() {
        let choice = ThemeChoice {
            color: true,
            name: ThemeName::Basic,
            ascii: false,
        };
        let theme = Theme::new(choice);
        for style in [
            theme.level(Level::Critical),
            theme.level(Level::Dim),
            theme.label(),
            theme.selection(),
            theme.own_process(),
            theme.gauge(),
        ] {
            for color in [style.fg, style.bg].into_iter().flatten() {
                assert!(
                    !matches!(color, Color::Indexed(_) | Color::Rgb(..)),
                    "{color:?} is not one of the 16 ANSI colours"
                );
            }
        }
    }
}
