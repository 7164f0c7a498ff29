//! The `nano-infer` command line: `generate`, `chat`, `bench`, `fetch` and `fixture`.
//!
//! Every subcommand is a thin front end over the library (`Llama`, `Generator`, `Tokenizer`);
//! this binary only parses flags, prints, and turns errors into messages (it is the one place
//! that uses `anyhow`). Generated text goes to stdout; progress and statistics go to stderr, so
//! `nano-infer generate ... > out.txt` captures the text alone.

mod cli;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = cli::Cli::parse();
    cli::run(args)
}
