//! A minimal QMP client (QEMU's machine protocol over the `-qmp` Unix socket that
//! `QemuConfig::qmp` creates): enough for the display tests to take screendumps and
//! type on the emulated PS/2 keyboard (`send-key`). Commands are written as JSON by
//! hand and replies are told apart by their `return` / `error` member.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// A connection to QEMU's QMP socket, past its greeting and capabilities negotiation.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects (QEMU creates the socket while starting: retried until `within`) and
    /// leaves capabilities negotiation mode.
    pub fn connect(path: &Path, within: Duration) -> Result<Qmp, String> {
        let deadline = Instant::now() + within;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("QMP socket {}: {e}", path.display()));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut q = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        q.line()?; // the greeting
        q.execute("qmp_capabilities", "{}")?;
        Ok(q)
    }

    fn line(&mut self) -> Result<String, String> {
        let mut l = String::new();
        match self.reader.read_line(&mut l) {
            Ok(0) => Err("QMP: QEMU closed the socket".into()),
            Ok(_) => Ok(l),
            Err(e) => Err(format!("QMP: {e}")),
        }
    }

    /// Runs a command with `arguments` (a JSON object) and returns its reply line;
    /// events that arrive meanwhile are skipped.
    pub fn execute(&mut self, command: &str, arguments: &str) -> Result<String, String> {
        let msg = format!("{{\"execute\":\"{command}\",\"arguments\":{arguments}}}\n");
        self.writer
            .write_all(msg.as_bytes())
            .map_err(|e| format!("QMP: {e}"))?;
        loop {
            let l = self.line()?;
            if l.contains("\"return\"") {
                return Ok(l);
            }
            if l.contains("\"error\"") {
                return Err(format!("QMP {command}: {}", l.trim()));
            }
        }
    }

    /// Writes the display's contents to `file` (PPM).
    pub fn screendump(&mut self, file: &Path) -> Result<(), String> {
        let args = format!("{{\"filename\":{:?}}}", file.display().to_string());
        self.execute("screendump", &args).map(|_| ())
    }

    /// Presses and releases one key chord (QEMU key names, "shift" plus "a" etc.),
    /// then waits `gap` so that the next chord is a separate press.
    pub fn send_key(&mut self, chord: &[&str], gap: Duration) -> Result<(), String> {
        let keys: Vec<String> = chord
            .iter()
            .map(|k| format!("{{\"type\":\"qcode\",\"data\":\"{k}\"}}"))
            .collect();
        let args = format!("{{\"keys\":[{}],\"hold-time\":20}}", keys.join(","));
        self.execute("send-key", &args)?;
        std::thread::sleep(gap);
        Ok(())
    }

    /// Types text: letters, digits, space, '-' and Enter for '\n' (what shell commands
    /// need); upper case with Shift.
    pub fn type_text(&mut self, text: &str) -> Result<(), String> {
        for c in text.chars() {
            let name = match c {
                '\n' => "ret".to_string(),
                ' ' => "spc".to_string(),
                '-' => "minus".to_string(),
                c if c.is_ascii_alphanumeric() => c.to_ascii_lowercase().to_string(),
                c => return Err(format!("type_text: no key for {c:?}")),
            };
            let chord: Vec<&str> = if c.is_ascii_uppercase() {
                vec!["shift", &name]
            } else {
                vec![&name]
            };
            self.send_key(&chord, Duration::from_millis(40))?;
        }
        Ok(())
    }
}
