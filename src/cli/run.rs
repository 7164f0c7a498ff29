//! `generate` and `chat`: stream text from the model to stdout.

use std::io::{BufRead, Write};
use std::ops::ControlFlow;

use anyhow::Context;
use clap::Args;
use nano_infer::Error;
use nano_infer::generate::{Generation, Generator, StopReason};
use nano_infer::tokenizer::ChatMessage;

use super::{ModelArgs, SamplingArgs};

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// The text to continue.
    #[arg(long)]
    prompt: String,
    /// Wrap the prompt as a user turn in the model's chat template.
    #[arg(long)]
    chat: bool,
    /// A system prompt for --chat (default: the template's own, if any).
    #[arg(long)]
    system: Option<String>,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
}

#[derive(Args, Debug)]
pub struct ChatArgs {
    /// A system prompt (default: the template's own, if any).
    #[arg(long)]
    system: Option<String>,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
}

/// Writes streamed text to stdout as it comes.
fn print_text(text: &str) -> ControlFlow<()> {
    let mut out = std::io::stdout().lock();
    // A closed stdout (`| head`) ends generation instead of failing it.
    if out
        .write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .is_err()
    {
        return ControlFlow::Break(());
    }
    ControlFlow::Continue(())
}

pub fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let config = args.sampling.generate_config();
    config.sampler.validate()?; // before spending seconds on loading
    let (model, tokenizer) = args.model.load()?;
    let ids = if args.chat {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(ChatMessage::new("system", system.as_str()));
        }
        messages.push(ChatMessage::new("user", args.prompt.as_str()));
        let text = tokenizer.apply_chat_template(&messages, true)?;
        // The rendered template already spells out its special tokens.
        tokenizer.encode(&text, false)?
    } else {
        tokenizer.encode(&args.prompt, true)?
    };
    let mut generator = Generator::new(&model, &tokenizer)?;
    if !args.chat {
        let _ = print_text(&args.prompt);
    }
    let out = generator.generate(&ids, &config, print_text)?;
    println!();
    print_stats(&out);
    Ok(())
}

pub fn chat(args: ChatArgs) -> anyhow::Result<()> {
    let config = args.sampling.generate_config();
    config.sampler.validate()?;
    let (model, tokenizer) = args.model.load()?;
    let mut generator = Generator::new(&model, &tokenizer)?;
    let system: Vec<ChatMessage> = args
        .system
        .iter()
        .map(|s| ChatMessage::new("system", s.as_str()))
        .collect();
    let mut history: Vec<ChatMessage> = Vec::new();
    eprintln!(
        "chat with {} positions of context; /exit quits, /reset forgets the conversation",
        model.max_seq()
    );
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        eprint!("\n> ");
        std::io::stderr().flush().ok();
        let Some(line) = lines.next() else { break };
        let line = line.context("cannot read stdin")?;
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                history.clear();
                generator.reset();
                eprintln!("(conversation forgotten)");
                continue;
            }
            _ => {}
        }
        history.push(ChatMessage::new("user", line));
        let out = loop {
            let messages: Vec<ChatMessage> = system.iter().chain(&history).cloned().collect();
            let text = tokenizer.apply_chat_template(&messages, true)?;
            let ids = tokenizer.encode(&text, false)?;
            match generator.generate(&ids, &config, print_text) {
                Ok(out) => break Some(out),
                // Too long: forget the oldest exchange and try again.
                Err(Error::ContextOverflow { .. }) if history.len() > 1 => {
                    history.drain(..2.min(history.len() - 1));
                    eprintln!("(context full: dropped the oldest turn)");
                }
                Err(Error::ContextOverflow { needed, capacity }) => {
                    eprintln!(
                        "(this message needs {needed} positions; the context holds {capacity})"
                    );
                    history.clear();
                    break None;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let Some(out) = out else { continue };
        println!();
        print_stats(&out);
        history.push(ChatMessage::new("assistant", out.text.trim()));
    }
    Ok(())
}

/// The statistics line on stderr.
fn print_stats(out: &Generation) {
    let s = &out.stats;
    let stop = match out.stop {
        StopReason::EndOfSequence => "end of sequence",
        StopReason::StopString => "stop string",
        StopReason::MaxTokens => "max tokens",
        StopReason::ContextFull => "context full",
        StopReason::Cancelled => "cancelled",
    };
    let reused = if s.reused_tokens > 0 {
        format!(" (+{} cached)", s.reused_tokens)
    } else {
        String::new()
    };
    eprintln!(
        "[prompt: {} tokens{reused} in {:.2} s, {:.1} tok/s | generated: {} tokens, {:.1} tok/s | stop: {stop}]",
        s.prompt_tokens,
        s.prompt_time.as_secs_f64(),
        s.prompt_tokens_per_sec(),
        s.generated_tokens,
        s.decode_tokens_per_sec(),
    );
}
