//! A running QEMU whose serial console is a pipe: wait for text, type lines, collect the
//! exit status. Lines are sent only after the shell's prompt appears, so nothing typed
//! reaches the firmware (OVMF also reads COM1) or arrives before the kernel listens.
//! Stack-trace lines carry their function and source line, in the echoed stream and in
//! the collected output (`symbolize`).

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError, channel};
use std::time::{Duration, Instant};

use crate::profile::{QemuConfig, find_firmware, find_qemu, private_vars_copy};
use crate::symbolize::{Annotating, FrameAnnotator};

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// QEMU exited 0: the guest powered off (ACPI S5).
    PoweredOff,
    /// isa-debug-exit (codes written by kernel/src/qemu.rs): the in-kernel tests ran
    /// and none failed.
    TestsPassed,
    /// isa-debug-exit: the in-kernel tests ran and one failed.
    TestsFailed,
    /// isa-debug-exit: the kernel panicked.
    Panicked,
    /// Any other exit status.
    Other(i32),
    /// Killed by a signal.
    Signalled,
    /// Still running at the deadline; killed.
    TimedOut,
}

impl ExitKind {
    /// QEMU's process status (isa-debug-exit maps the kernel's code to `code << 1 | 1`).
    pub fn from_status(code: Option<i32>) -> ExitKind {
        match code {
            Some(0) => ExitKind::PoweredOff,
            Some(0x21) => ExitKind::TestsPassed,
            Some(0x23) => ExitKind::TestsFailed,
            Some(0x25) => ExitKind::Panicked,
            Some(c) => ExitKind::Other(c),
            None => ExitKind::Signalled,
        }
    }

    /// Exit status for the launcher's own process.
    pub fn process_status(self) -> i32 {
        match self {
            ExitKind::PoweredOff | ExitKind::TestsPassed => 0,
            ExitKind::TestsFailed => 1,
            ExitKind::Panicked => 3,
            ExitKind::Other(c) => c,
            ExitKind::Signalled => 4,
            ExitKind::TimedOut => 5,
        }
    }
}

/// How a finished run ended, and what it printed.
#[derive(Debug)]
pub struct Outcome {
    /// How QEMU exited.
    pub exit: ExitKind,
    /// Everything the guest printed on COM1 (plus QEMU's own stderr at the end).
    pub output: String,
}

/// Why a session could not go on.
#[derive(Debug)]
pub enum SessionError {
    /// QEMU could not be started (firmware or QEMU missing, a file not writable).
    Setup(String),
    /// The text did not appear before the deadline.
    Timeout {
        /// The text waited for.
        waiting_for: String,
    },
    /// QEMU exited while we waited for text.
    Exited {
        /// The text waited for.
        waiting_for: String,
        /// How QEMU exited.
        exit: ExitKind,
    },
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            SessionError::Setup(s) => f.write_str(s),
            SessionError::Timeout { waiting_for } => {
                write!(f, "timed out waiting for {waiting_for:?}")
            }
            SessionError::Exited { waiting_for, exit } => {
                write!(
                    f,
                    "QEMU exited ({exit:?}) while waiting for {waiting_for:?}"
                )
            }
        }
    }
}

/// One QEMU guest, its COM1 read as it prints and typed into when the shell is ready.
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Vec<u8>>,
    stderr: Option<std::thread::JoinHandle<String>>,
    output: Vec<u8>,
    /// Output before this offset has been matched already.
    cursor: usize,
    deadline: Instant,
    /// OVMF's variables for this guest; removed when the session is dropped.
    _vars: tempfile::NamedTempFile,
}

impl Session {
    /// Starts QEMU; everything must finish within `limit` of wall time.
    pub fn start(cfg: &QemuConfig, limit: Duration) -> Result<Session, SessionError> {
        Session::start_with(cfg, limit, None)
    }

    /// Like `start`, and copies the guest's output to `echo` as soon as QEMU prints it,
    /// from the thread that reads QEMU: whoever reads `echo` (a terminal, or a program
    /// conversing with the shell) sees each prompt while the launcher waits, never
    /// only when it next looks.
    pub fn start_echoing(
        cfg: &QemuConfig,
        limit: Duration,
        echo: Box<dyn Write + Send>,
    ) -> Result<Session, SessionError> {
        Session::start_with(cfg, limit, Some(echo))
    }

    fn start_with(
        cfg: &QemuConfig,
        limit: Duration,
        echo: Option<Box<dyn Write + Send>>,
    ) -> Result<Session, SessionError> {
        let qemu = find_qemu().map_err(SessionError::Setup)?;
        let fw = find_firmware().map_err(SessionError::Setup)?;
        if !cfg.image.is_file() {
            return Err(SessionError::Setup(format!(
                "disk image {} is missing (cargo build makes it)",
                cfg.image.display()
            )));
        }
        let vars = private_vars_copy(&fw.vars_template).map_err(SessionError::Setup)?;
        let mut child = Command::new(&qemu)
            .args(cfg.args(&fw, vars.path()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| SessionError::Setup(format!("cannot start {}: {e}", qemu.display())))?;
        let mut out = child.stdout.take().expect("piped");
        let mut err = child.stderr.take().expect("piped");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            // Made here: the symbols it may load stay on this thread.
            let mut echo = echo.map(Annotating::new);
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Some(e) = echo.as_mut() {
                    // A reader that went away (a closed pipe) only stops the copy.
                    if e.write_all(&buf[..n]).and_then(|_| e.flush()).is_err() {
                        echo = None;
                    }
                }
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Ok(Session {
            stdin: child.stdin.take(),
            child,
            rx,
            stderr: Some(stderr),
            output: Vec::new(),
            cursor: 0,
            deadline: Instant::now() + limit,
            _vars: vars,
        })
    }

    fn take(&mut self, chunk: Vec<u8>) {
        self.output.extend_from_slice(&chunk);
    }

    /// Waits until `text` appears after everything matched so far.
    pub fn wait_for(&mut self, text: &str) -> Result<(), SessionError> {
        loop {
            if let Some(pos) = find(&self.output[self.cursor..], text.as_bytes()) {
                self.cursor += pos + text.len();
                return Ok(());
            }
            let now = Instant::now();
            if now >= self.deadline {
                return Err(SessionError::Timeout {
                    waiting_for: text.to_string(),
                });
            }
            match self.rx.recv_timeout(self.deadline - now) {
                Ok(chunk) => self.take(chunk),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let exit = self.wait_exit();
                    return Err(SessionError::Exited {
                        waiting_for: text.to_string(),
                        exit,
                    });
                }
            }
        }
    }

    /// Waits for a value from `rx` (say, the next line of a script that is still being
    /// written) while watching QEMU: if QEMU exits first, or the deadline passes, that
    /// is the answer instead. `what` names the wait in errors. A closed `rx` gives
    /// `Ok(None)`.
    pub fn wait_on<T>(&mut self, rx: &Receiver<T>, what: &str) -> Result<Option<T>, SessionError> {
        loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(v) => return Ok(Some(v)),
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
                Err(RecvTimeoutError::Timeout) => {}
            }
            loop {
                match self.rx.try_recv() {
                    Ok(chunk) => self.take(chunk),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        let exit = self.wait_exit();
                        return Err(SessionError::Exited {
                            waiting_for: what.to_string(),
                            exit,
                        });
                    }
                }
            }
            if Instant::now() >= self.deadline {
                return Err(SessionError::Timeout {
                    waiting_for: what.to_string(),
                });
            }
        }
    }

    /// Types a line into the guest's console.
    pub fn send_line(&mut self, line: &str) -> Result<(), SessionError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| SessionError::Setup("stdin closed".into()))?;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|_| stdin.flush())
            .map_err(|e| SessionError::Setup(format!("cannot write to QEMU: {e}")))
    }

    fn wait_exit(&mut self) -> ExitKind {
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) => {
                    use std::os::unix::process::ExitStatusExt;
                    return if st.signal().is_some() {
                        ExitKind::Signalled
                    } else {
                        ExitKind::from_status(st.code())
                    };
                }
                Ok(None) if Instant::now() < self.deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return ExitKind::TimedOut;
                }
            }
        }
    }

    /// Stops QEMU now (used when a script's input is exhausted).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Waits for QEMU to exit (or the deadline), then returns everything it printed.
    pub fn finish(mut self) -> Outcome {
        self.stdin.take();
        let exit = self.wait_exit();
        while let Ok(chunk) = self.rx.recv_timeout(Duration::from_millis(200)) {
            self.take(chunk);
        }
        let mut output = FrameAnnotator::default().annotate(&String::from_utf8_lossy(&self.output));
        if let Some(err) = self.stderr.take().and_then(|h| h.join().ok())
            && !err.is_empty()
        {
            output.push_str("\n--- QEMU stderr ---\n");
            output.push_str(&err);
        }
        Outcome { exit, output }
    }

    /// Boots, types each line after a prompt, then waits for QEMU to exit. A script
    /// should end the run itself (poweroff, `test --exit`, a crash); one that does not
    /// is stopped at the deadline and reported as `TimedOut`.
    pub fn run_script(
        cfg: &QemuConfig,
        lines: &[&str],
        limit: Duration,
    ) -> Result<Outcome, (SessionError, String)> {
        let s = Session::start(cfg, limit).map_err(|e| (e, String::new()))?;
        s.script(lines)
    }

    /// `run_script`, copying the guest's output to `echo` as it arrives.
    pub fn run_script_echoing(
        cfg: &QemuConfig,
        lines: &[&str],
        limit: Duration,
        echo: Box<dyn Write + Send>,
    ) -> Result<Outcome, (SessionError, String)> {
        let s = Session::start_echoing(cfg, limit, echo).map_err(|e| (e, String::new()))?;
        s.script(lines)
    }

    /// Like `start_echoing` when `echo` is given, else `start`.
    pub fn start_maybe_echoing(
        cfg: &QemuConfig,
        limit: Duration,
        echo: Option<Box<dyn Write + Send>>,
    ) -> Result<Session, SessionError> {
        Session::start_with(cfg, limit, echo)
    }

    /// `run_script`, also timing QEMU's start to the first prompt on the host's clock
    /// (firmware, bootloader and kernel boot all included).
    pub fn run_script_timed(
        cfg: &QemuConfig,
        lines: &[&str],
        limit: Duration,
        echo: Option<Box<dyn Write + Send>>,
    ) -> Result<(Outcome, Duration), (SessionError, String)> {
        let started = Instant::now();
        let mut s = Session::start_with(cfg, limit, echo).map_err(|e| (e, String::new()))?;
        if let Err(e) = s.wait_for(crate::PROMPT) {
            let out = s.finish().output;
            return Err((e, out));
        }
        let first = started.elapsed();
        // The prompt just matched is the first line's.
        s.cursor -= crate::PROMPT.len();
        s.script(lines).map(|o| (o, first))
    }

    fn script(mut self, lines: &[&str]) -> Result<Outcome, (SessionError, String)> {
        for line in lines {
            if let Err(e) = self
                .wait_for(crate::PROMPT)
                .and_then(|_| self.send_line(line))
            {
                let out = self.finish().output;
                return Err((e, out));
            }
        }
        Ok(self.finish())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
