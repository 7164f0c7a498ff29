//! The `nano-infer` command line: `generate`, `chat`, `bench`, `fetch` and `fixture`.
//!
//! Every subcommand is a thin front end over the library (`Llama`, `Generator`, `Tokenizer`);
//! this binary only parses flags, prints, and turns errors into messages (it is the one place
//! that uses `anyhow`). Generated text goes to stdout; progress and statistics go to stderr, so
//! `nano-infer generate ... > out.txt` captures the text alone.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole chain of causes on one line, without a backtrace.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
