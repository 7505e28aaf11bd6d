//! `altishift-agent`: the reader the console copies to an SSH source host
//! (see the library's documentation for its commands and protocol).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match altishift_agent::serve::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("altishift-agent: error: {e}");
            ExitCode::FAILURE
        }
    }
}
