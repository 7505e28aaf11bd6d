//! Asking the operator on the terminal: a masked secret, a typed confirmation.

use crate::secret::Secret;
use std::io::{BufRead, Write};

/// Reads a secret from the controlling terminal with echo off. None when
/// there is no terminal (scripts must use `env:NAME`).
pub fn masked_prompt(label: &str) -> Option<Secret> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()?;
    let fd = std::os::unix::io::AsRawFd::as_raw_fd(&tty);
    // SAFETY: termios calls on a descriptor we own, with a zeroed struct the
    // kernel fills in before we read it.
    let mut original: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut original) } != 0 {
        return None;
    }
    let mut silent = original;
    silent.c_lflag &= !libc::ECHO;
    silent.c_lflag |= libc::ECHONL;
    // SAFETY: as above.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &silent) };
    let mut writer = &tty;
    let _ = write!(writer, "{label} (input hidden): ");
    let _ = writer.flush();
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    // SAFETY: restores the settings read above.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &original) };
    read.ok()?;
    let value = line.trim_end_matches(['\r', '\n']).to_string();
    zeroize::Zeroize::zeroize(&mut line);
    Some(Secret::new(value))
}

/// Asks a question on stdout and reads one line from stdin.
pub fn ask(question: &str) -> Option<String> {
    print!("{question}");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim().to_string()),
    }
}
