//! `sart bgp decode`: decode a recorded BGP byte stream, inferring the session context from the
//! OPEN messages it carries.
//!
//! One direction alone can leave the context ambiguous (the sender offered 4-octet AS or add-path,
//! but did the receiver?). With `--peer` both OPENs settle it; without, each UPDATE is read with
//! the most likely context first and the alternatives after, and the first reading that parses
//! cleanly wins (as Wireshark's dissector does); the winner is tried first for the next UPDATE.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use bgp::capability::Capability;
use bgp::{Context, DecodeError, Family, FamilySet, Message, MessageReader, MessageType, Open};

use crate::Output;

#[derive(clap::Args, Debug, Default)]
pub struct DecodeArgs {
    /// File with the raw bytes, or `-` (the default) for stdin.
    #[arg(default_value = "-")]
    pub input: String,
    /// The input is hex text (whitespace ignored) instead of raw bytes.
    #[arg(long)]
    pub hex: bool,
    /// The other direction of the same session, to settle the context from both OPENs.
    #[arg(long)]
    pub peer: Option<PathBuf>,
    /// Force 4-octet AS numbers on or off (default: from the OPENs).
    #[arg(long)]
    pub four_octet_as: Option<bool>,
    /// Families whose NLRI carry add-path identifiers, e.g. `ipv4-unicast,ipv6-unicast`
    /// (default: from the OPENs); `none` for no family.
    #[arg(long, value_delimiter = ',')]
    pub add_path: Option<Vec<String>>,
    /// Allow messages up to 65535 octets (default: from the OPENs).
    #[arg(long)]
    pub extended_message: Option<bool>,
}

pub fn run(args: &DecodeArgs, output: Output) -> anyhow::Result<ExitCode> {
    let bytes = read_input(&args.input, args.hex)?;
    let peer = match &args.peer {
        Some(p) => Some(read_input(&p.to_string_lossy(), args.hex)?),
        None => None,
    };
    let overrides = Overrides::from_args(args)?;
    let peer_open = match &peer {
        Some(p) => Some(
            first_open(p)
                .context("--peer")?
                .context("--peer: the peer's stream holds no OPEN")?,
        ),
        None => None,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut stream = Stream::new(&bytes, peer_open, overrides);
    loop {
        match stream.next_message() {
            Ok(Some(d)) => {
                let line = match output {
                    Output::Json => {
                        crate::json::message(&d.message, d.offset, d.len, &d.context).to_string()
                    }
                    Output::Plain => crate::json::summary(&d.message, d.offset),
                };
                if writeln!(out, "{line}").is_err() {
                    // A closed pipe (e.g. `| head`) is not an error of ours.
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Ok(None) => return Ok(ExitCode::SUCCESS),
            Err(e) => {
                let _ = out.flush();
                let n = e.error.notification();
                eprintln!(
                    "error: byte {}: {} (message starting at byte {}); a speaker would send NOTIFICATION {}/{} ({})",
                    e.message_start + e.error.offset,
                    e.error.kind,
                    e.message_start,
                    n.code,
                    n.subcode,
                    n.description()
                );
                return Ok(ExitCode::FAILURE);
            }
        }
    }
}

fn read_input(path: &str, hex: bool) -> anyhow::Result<Vec<u8>> {
    let mut raw = Vec::new();
    if path == "-" {
        std::io::stdin()
            .read_to_end(&mut raw)
            .context("reading stdin")?;
    } else {
        raw = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    }
    if !hex {
        return Ok(raw);
    }
    let text: String = String::from_utf8_lossy(&raw)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let text = text.strip_prefix("0x").unwrap_or(&text);
    hex::decode(text).with_context(|| format!("{path}: not valid hex"))
}

fn first_open(bytes: &[u8]) -> anyhow::Result<Option<Open>> {
    let ctx = Context::default();
    let mut r = MessageReader::new(bytes);
    while let Some(raw) = r.next_raw(&ctx).map_err(|e| anyhow::anyhow!("{e}"))? {
        if raw.get(18) == Some(&MessageType::Open.to_u8()) {
            return match Message::decode(raw, &ctx) {
                Ok(Message::Open(o)) => Ok(Some(o)),
                Ok(_) => Ok(None),
                Err(e) => bail!("the peer's OPEN does not decode: {e}"),
            };
        }
    }
    Ok(None)
}

/// Context settings given on the command line; they win over what the OPENs say.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub four_octet_as: Option<bool>,
    pub add_path: Option<FamilySet>,
    pub extended_message: Option<bool>,
}

impl Overrides {
    fn from_args(args: &DecodeArgs) -> anyhow::Result<Self> {
        let add_path = match &args.add_path {
            None => None,
            Some(names) => {
                let mut set = FamilySet::new();
                for n in names.iter().filter(|n| n.as_str() != "none") {
                    let f = Family::from_name(n).with_context(|| {
                        format!("--add-path: unknown family {n:?} (ipv4-unicast, ipv6-unicast)")
                    })?;
                    set.insert(f);
                }
                Some(set)
            }
        };
        Ok(Overrides {
            four_octet_as: args.four_octet_as,
            add_path,
            extended_message: args.extended_message,
        })
    }

    fn apply(&self, mut c: Context) -> Context {
        if let Some(v) = self.four_octet_as {
            c.four_octet_as = v;
        }
        if let Some(v) = &self.add_path {
            c.add_path = v.clone();
        }
        if let Some(v) = self.extended_message {
            c.extended_message = v;
        }
        c
    }

    fn complete(&self) -> bool {
        self.four_octet_as.is_some() && self.add_path.is_some() && self.extended_message.is_some()
    }
}

/// A decoded message with where it was and the context it was read with.
#[derive(Debug)]
pub struct Decoded {
    pub message: Message,
    pub offset: usize,
    pub len: usize,
    pub context: Context,
}

#[derive(Debug)]
pub struct StreamError {
    pub message_start: usize,
    pub error: DecodeError,
}

/// Walks a stream, keeping the candidate contexts up to date as OPENs go by.
pub struct Stream<'a> {
    reader: MessageReader<'a>,
    peer_open: Option<Open>,
    overrides: Overrides,
    /// Readings to try, most likely first.
    candidates: Vec<Context>,
}

impl<'a> Stream<'a> {
    pub fn new(bytes: &'a [u8], peer_open: Option<Open>, overrides: Overrides) -> Self {
        let mut s = Stream {
            reader: MessageReader::new(bytes),
            peer_open,
            overrides,
            candidates: Vec::new(),
        };
        // Before any OPEN: the modern default first, RFC 4271's baseline after.
        s.set_candidates(vec![Context::four_octet(), Context::default()]);
        s
    }

    fn set_candidates(&mut self, v: Vec<Context>) {
        let mut out: Vec<Context> = Vec::new();
        for c in v {
            let c = self.overrides.apply(c);
            if !out.contains(&c) {
                out.push(c);
            }
        }
        if self.overrides.complete() {
            out.truncate(1);
        }
        self.candidates = out;
    }

    /// The sender's OPEN tells what it offered; the peer's OPEN (if known) what was agreed.
    fn learn_open(&mut self, sender: &Open) {
        if let Some(peer) = &self.peer_open {
            // The receiver's view: local = the peer, remote = the sender of this stream.
            let agreed = bgp::negotiate(peer, sender).receive;
            self.set_candidates(vec![agreed]);
            return;
        }
        let four = sender.has(bgp::capability::code::FOUR_OCTET_AS);
        let ext = sender.has(bgp::capability::code::EXTENDED_MESSAGE);
        let offered: FamilySet = sender
            .capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::AddPath(v) => {
                    Some(v.iter().filter(|a| a.mode.can_send()).map(|a| a.family))
                }
                _ => None,
            })
            .flatten()
            .collect();
        let ctx = |four_octet_as: bool, add_path: FamilySet| Context {
            four_octet_as,
            add_path,
            extended_message: ext,
        };
        // Most likely: the receiver accepted everything offered. Then every combination of
        // declining 4-octet AS or add-path.
        let mut v = vec![ctx(four, offered.clone())];
        for f in offered.iter() {
            let rest: FamilySet = offered.iter().filter(|x| *x != f).collect();
            v.push(ctx(four, rest));
        }
        v.push(ctx(four, FamilySet::new()));
        if four {
            v.push(ctx(false, offered.clone()));
            v.push(ctx(false, FamilySet::new()));
        }
        self.set_candidates(v);
    }

    pub fn next_message(&mut self) -> Result<Option<Decoded>, StreamError> {
        let offset = self.reader.position();
        // Framing only depends on the size limit: use the most permissive candidate.
        let frame_ctx = Context {
            extended_message: self.candidates.iter().any(|c| c.extended_message),
            ..Context::default()
        };
        let raw = match self.reader.next_raw(&frame_ctx) {
            Ok(Some(raw)) => raw,
            Ok(None) => return Ok(None),
            Err(e) => {
                return Err(StreamError {
                    message_start: offset,
                    error: DecodeError::new(e.offset - offset, e.kind),
                });
            }
        };
        let mut first_err = None;
        let mut fallback = None;
        for (i, ctx) in self.candidates.iter().enumerate() {
            match Message::decode(raw, ctx) {
                Ok(Message::Update(u)) if !u.errors.is_empty() => {
                    // Parses, but with attribute errors: maybe a wrong AS width. Keep looking.
                    if fallback.is_none() {
                        fallback = Some((i, Message::Update(u)));
                    }
                }
                Ok(m) => {
                    fallback = Some((i, m));
                    break;
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        let Some((i, message)) = fallback else {
            return Err(StreamError {
                message_start: offset,
                error: first_err.unwrap_or_else(|| {
                    DecodeError::new(
                        0,
                        bgp::ErrorKind::MalformedAttributeList("no reading parses"),
                    )
                }),
            });
        };
        // The reading that worked goes first next time.
        let context = self.candidates.remove(i);
        self.candidates.insert(0, context.clone());
        if let Message::Open(o) = &message {
            self.learn_open(o);
        }
        Ok(Some(Decoded {
            message,
            offset,
            len: raw.len(),
            context,
        }))
    }
}
