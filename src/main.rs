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
    // The main thread joins rayon's pool as worker 0: every parallel op of a decode step then
    // runs on it and the other workers, instead of parking it until a worker finishes (a
    // context switch per op, ~14% of a 1-thread CPU decode step). The pool is still sized by
    // RAYON_NUM_THREADS or the CPU count. It can only fail if a pool already exists.
    let _ = rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole chain of causes on one line, without a backtrace.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
