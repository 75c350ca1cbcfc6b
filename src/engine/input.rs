//! Prompt files: `.txt` (one prompt per line; blank lines are skipped) and `.jsonl` (one JSON
//! object per line with a string `text` field, so prompts may hold newlines and tabs). Read
//! twice, streaming: once to count and hash, once while the run goes on.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::EngineError;

/// Prompt file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptFormat {
    /// One prompt per line.
    Txt,
    /// JSON lines with a `text` field.
    Jsonl,
}

/// A scanned prompt file.
#[derive(Debug, Clone)]
pub struct PromptFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its format (from the extension).
    pub format: PromptFormat,
    /// Prompts in it.
    pub count: usize,
    /// sha256 of its bytes.
    pub sha256: String,
}

impl PromptFile {
    /// Reads the file once: checks every line, counts prompts, hashes the bytes.
    pub fn scan(path: &Path) -> Result<Self, EngineError> {
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("txt") => PromptFormat::Txt,
            Some("jsonl") => PromptFormat::Jsonl,
            _ => {
                return Err(EngineError::Input {
                    path: path.to_path_buf(),
                    detail: "use a .txt file (one prompt per line) or a .jsonl file (objects with a \"text\" field)".into(),
                })
            }
        };
        let mut file = Self {
            path: path.to_path_buf(),
            format,
            count: 0,
            sha256: String::new(),
        };
        let mut hash = Sha256::new();
        let mut lines = file.lines()?;
        let mut count = 0;
        while let Some(item) = lines.next_raw(Some(&mut hash)) {
            let (line_no, line) = item?;
            if file.parse(line_no, &line)?.is_some() {
                count += 1;
            }
        }
        if count == 0 {
            return Err(EngineError::Input {
                path: path.to_path_buf(),
                detail: "holds no prompts".into(),
            });
        }
        file.count = count;
        file.sha256 = format!("{:x}", hash.finalize());
        Ok(file)
    }

    /// The prompts in order, as `(index, text)`, starting at prompt `skip`.
    pub fn prompts(&self, skip: usize) -> Result<Prompts<'_>, EngineError> {
        Ok(Prompts {
            file: self,
            lines: self.lines()?,
            next_index: 0,
            skip,
        })
    }

    fn lines(&self) -> Result<Lines, EngineError> {
        let f = File::open(&self.path).map_err(|e| EngineError::Input {
            path: self.path.clone(),
            detail: format!("cannot open it ({e})"),
        })?;
        Ok(Lines {
            reader: BufReader::new(f),
            line_no: 0,
            path: self.path.clone(),
        })
    }

    fn parse(&self, line_no: usize, line: &str) -> Result<Option<String>, EngineError> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            return Ok(None);
        }
        match self.format {
            PromptFormat::Txt => Ok(Some(line.to_string())),
            PromptFormat::Jsonl => {
                let bad = |detail: String| EngineError::Input {
                    path: self.path.clone(),
                    detail: format!("line {line_no}: {detail}"),
                };
                let v: serde_json::Value =
                    serde_json::from_str(line).map_err(|e| bad(format!("not JSON ({e})")))?;
                match v.get("text") {
                    Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                    _ => Err(bad("needs an object with a string \"text\" field".into())),
                }
            }
        }
    }
}

struct Lines {
    reader: BufReader<File>,
    line_no: usize,
    path: PathBuf,
}

impl Lines {
    fn next_raw(
        &mut self,
        hash: Option<&mut Sha256>,
    ) -> Option<Result<(usize, String), EngineError>> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => {
                self.line_no += 1;
                if let Some(h) = hash {
                    h.update(&buf);
                }
                Some(
                    String::from_utf8(buf)
                        .map(|s| (self.line_no, s))
                        .map_err(|_| EngineError::Input {
                            path: self.path.clone(),
                            detail: format!("line {} is not UTF-8", self.line_no),
                        }),
                )
            }
            Err(e) => Some(Err(EngineError::Input {
                path: self.path.clone(),
                detail: format!("read failed ({e})"),
            })),
        }
    }
}

/// Streaming iterator over a file's prompts.
pub struct Prompts<'a> {
    file: &'a PromptFile,
    lines: Lines,
    next_index: usize,
    skip: usize,
}

impl Iterator for Prompts<'_> {
    type Item = Result<(usize, String), EngineError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (line_no, line) = match self.lines.next_raw(None)? {
                Ok(x) => x,
                Err(e) => return Some(Err(e)),
            };
            match self.file.parse(line_no, &line) {
                Err(e) => return Some(Err(e)),
                Ok(None) => continue,
                Ok(Some(text)) => {
                    let index = self.next_index;
                    self.next_index += 1;
                    if index >= self.skip {
                        return Some(Ok((index, text)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_and_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let txt = dir.path().join("p.txt");
        std::fs::write(&txt, "one\r\n\ntwo\nthree").unwrap();
        let f = PromptFile::scan(&txt).unwrap();
        assert_eq!(f.count, 3);
        let all: Vec<_> = f.prompts(1).unwrap().map(|p| p.unwrap()).collect();
        assert_eq!(all, vec![(1, "two".to_string()), (2, "three".to_string())]);

        let jl = dir.path().join("p.jsonl");
        std::fs::write(
            &jl,
            "{\"text\": \"a\\tb\\nc\"}\n{\"text\": \"d\", \"id\": 3}\n",
        )
        .unwrap();
        let f = PromptFile::scan(&jl).unwrap();
        let all: Vec<_> = f.prompts(0).unwrap().map(|p| p.unwrap().1).collect();
        assert_eq!(all, vec!["a\tb\nc".to_string(), "d".to_string()]);

        std::fs::write(&jl, "{\"text\": 1}\n").unwrap();
        let err = PromptFile::scan(&jl).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
        assert!(PromptFile::scan(&dir.path().join("p.csv")).is_err());
    }
}
