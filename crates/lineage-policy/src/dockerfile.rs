//! A Dockerfile reader that finds the external images a build depends on.
//!
//! This is not a full Dockerfile parser: it reads just enough of the format (as described in
//! the Dockerfile reference) to answer "which images does this build pull, is each pinned by
//! digest, and which one does the final stage sit on". It handles the shapes real files have:
//!
//! - parser directives (`# escape=`` ` ``), line continuations and comments inside them;
//! - instructions in any case (`from`, `From`);
//! - heredocs on `RUN`/`COPY`/`ADD` (`<<EOF`, `<<-EOF`, `<<"EOF"`), whose bodies are skipped;
//! - `ARG` before the first `FROM`, substituted into `FROM` (`$V`, `${V}`, `${V:-default}`,
//!   `${V:+alt}`), with build-time overrides;
//! - `FROM --platform=$BUILDPLATFORM image AS name`, `scratch`, and earlier stage names used
//!   as bases (which are not external images);
//! - `COPY --from=image`, which pulls an external image just as `FROM` does.

use std::collections::BTreeMap;

use lineage_model::{Digest, ImageRef, Repository, Tag};

/// What a Dockerfile builds on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dockerfile {
    pub stages: Vec<Stage>,
    /// Every external image named by a `FROM` or `COPY --from`, in file order.
    pub bases: Vec<ExternalImage>,
    /// Things the reader could not make sense of; they are reported, not fatal.
    pub problems: Vec<Problem>,
}

/// One `FROM` and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub index: usize,
    /// The `AS` name, lowercased as Docker does.
    pub name: Option<String>,
    /// 1-based line of the `FROM`.
    pub line: u32,
    pub source: StageSource,
    /// The `--platform` value after substitution, if given.
    pub platform: Option<String>,
}

/// What a stage is built on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageSource {
    /// An index into [`Dockerfile::bases`].
    External(usize),
    /// An earlier stage, by index.
    Stage(usize),
    /// `FROM scratch`: an empty filesystem, nothing pulled.
    Scratch,
}

/// How an external image is brought in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageUse {
    From,
    CopyFrom,
}

/// An image pulled from a registry during the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalImage {
    /// The reference after `ARG` substitution, as Docker would pull it.
    pub reference: String,
    /// The reference as written in the file, when substitution changed it.
    pub written: String,
    /// `None` when the reference does not parse (see [`Dockerfile::problems`]).
    pub name: Option<Repository>,
    pub tag: Option<Tag>,
    pub digest: Option<Digest>,
    pub line: u32,
    pub used_by: ImageUse,
    /// Index of the stage whose `FROM` or `COPY` names it.
    pub stage: usize,
    /// True for the base under the final stage, following stage-to-stage `FROM`s.
    pub final_stage: bool,
}

impl ExternalImage {
    pub fn is_pinned(&self) -> bool {
        self.digest.is_some()
    }
}

/// Something in the file that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: u32,
    pub message: String,
}

impl Dockerfile {
    /// The external `FROM`/`COPY --from` images not pinned by digest, each with its line.
    pub fn unpinned(&self) -> impl Iterator<Item = &ExternalImage> {
        self.bases.iter().filter(|b| !b.is_pinned())
    }

    /// The index of the final stage, if there is any `FROM`.
    pub fn final_stage(&self) -> Option<usize> {
        self.stages.len().checked_sub(1)
    }
}

/// Reads a Dockerfile with only the defaults its `ARG`s declare.
pub fn parse_dockerfile(text: &str) -> Dockerfile {
    parse_dockerfile_with_args(text, &BTreeMap::new())
}

/// Reads a Dockerfile as `docker build --build-arg K=V` would see it: a given build arg
/// overrides the default of a declared `ARG` (undeclared ones are ignored, as Docker does).
pub fn parse_dockerfile_with_args(text: &str, build_args: &BTreeMap<String, String>) -> Dockerfile {
    let mut out = Dockerfile::default();
    let mut meta_args: BTreeMap<String, String> = BTreeMap::new();
    for instr in logical_instructions(text) {
        let (keyword, rest) = split_keyword(&instr.text);
        match keyword.to_ascii_uppercase().as_str() {
            // Only ARGs before the first FROM are visible to FROM lines.
            "ARG" if out.stages.is_empty() => {
                for token in shell_words(rest) {
                    let (name, default) = match token.split_once('=') {
                        Some((n, d)) => (n.to_string(), Some(d.to_string())),
                        None => (token.clone(), None),
                    };
                    let value = build_args
                        .get(&name)
                        .cloned()
                        .or(default)
                        .unwrap_or_default();
                    meta_args.insert(name, value);
                }
            }
            "FROM" => from_instruction(&mut out, &meta_args, rest, instr.line),
            "COPY" => copy_instruction(&mut out, rest, instr.line),
            _ => {}
        }
    }
    mark_final(&mut out);
    out
}

fn from_instruction(out: &mut Dockerfile, args: &BTreeMap<String, String>, rest: &str, line: u32) {
    let index = out.stages.len();
    let mut platform = None;
    let mut words = rest.split_whitespace().peekable();
    while let Some(flag) = words.peek().filter(|w| w.starts_with("--")) {
        if let Some(p) = flag.strip_prefix("--platform=") {
            platform = Some(substitute(p, args, &mut Vec::new()));
        }
        words.next();
    }
    let Some(written) = words.next() else {
        out.problems.push(Problem {
            line,
            message: "`FROM` names no image".to_string(),
        });
        return;
    };
    let name = match (words.next(), words.next()) {
        (Some(as_kw), Some(name)) if as_kw.eq_ignore_ascii_case("as") => {
            Some(name.to_ascii_lowercase())
        }
        _ => None,
    };
    let mut unresolved = Vec::new();
    let reference = substitute(written, args, &mut unresolved);
    for var in &unresolved {
        out.problems.push(Problem {
            line,
            message: format!("`FROM {written}` uses `{var}`, which no `ARG` before the first `FROM` gives a value"),
        });
    }
    let source = if reference.eq_ignore_ascii_case("scratch") {
        StageSource::Scratch
    } else if let Some(stage) = stage_named(&out.stages, &reference) {
        StageSource::Stage(stage)
    } else {
        StageSource::External(push_image(
            out,
            reference,
            written,
            line,
            ImageUse::From,
            index,
        ))
    };
    out.stages.push(Stage {
        index,
        name,
        line,
        source,
        platform,
    });
}

fn copy_instruction(out: &mut Dockerfile, rest: &str, line: u32) {
    let Some(current) = out.stages.len().checked_sub(1) else {
        return;
    };
    for word in rest.split_whitespace().take_while(|w| w.starts_with("--")) {
        let Some(from) = word.strip_prefix("--from=") else {
            continue;
        };
        // Docker tries a stage name, then a stage index, then an image.
        let is_stage = stage_named(&out.stages, from).is_some()
            || from.parse::<usize>().is_ok_and(|i| i < current);
        if !is_stage {
            push_image(
                out,
                from.to_string(),
                from,
                line,
                ImageUse::CopyFrom,
                current,
            );
        }
    }
}

fn stage_named(stages: &[Stage], name: &str) -> Option<usize> {
    let name = name.to_ascii_lowercase();
    stages
        .iter()
        .find(|s| s.name.as_deref() == Some(name.as_str()))
        .map(|s| s.index)
}

fn push_image(
    out: &mut Dockerfile,
    reference: String,
    written: &str,
    line: u32,
    used_by: ImageUse,
    stage: usize,
) -> usize {
    let parsed = if reference.is_empty() {
        out.problems.push(Problem {
            line,
            message: format!("`{written}` resolves to an empty image reference"),
        });
        None
    } else {
        match ImageRef::parse(&reference) {
            Ok(r) => Some(r),
            Err(e) => {
                out.problems.push(Problem {
                    line,
                    message: format!("image reference `{reference}` {}", e.problem),
                });
                None
            }
        }
    };
    let (name, tag, digest) = match parsed {
        Some(r) => (Some(r.repository), r.tag, r.digest),
        None => (None, None, None),
    };
    out.bases.push(ExternalImage {
        reference,
        written: written.to_string(),
        name,
        tag,
        digest,
        line,
        used_by,
        stage,
        final_stage: false,
    });
    out.bases.len() - 1
}

/// Marks the external base under the last stage, following `FROM <stage>` links.
fn mark_final(out: &mut Dockerfile) {
    let Some(mut stage) = out.final_stage() else {
        return;
    };
    // Stage links only point backwards, so this walk ends.
    loop {
        match out.stages[stage].source {
            StageSource::Stage(earlier) if earlier < stage => stage = earlier,
            StageSource::External(base) => {
                out.bases[base].final_stage = true;
                return;
            }
            _ => return,
        }
    }
}

/// One instruction after joining continuation lines.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Instruction {
    /// 1-based line where the instruction starts.
    line: u32,
    text: String,
}

/// Splits the file into instructions: reads parser directives, drops comments, joins
/// continuation lines and skips heredoc bodies.
fn logical_instructions(text: &str) -> Vec<Instruction> {
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut escape = '\\';
    let mut i = 0;
    // Parser directives: `# key=value` lines at the very top, before anything else.
    while let Some(line) = lines.get(i) {
        let Some(body) = line.trim().strip_prefix('#') else {
            break;
        };
        let Some((key, value)) = body.split_once('=') else {
            break;
        };
        let key = key.trim().to_ascii_lowercase();
        if !key.chars().all(|c| c.is_ascii_alphabetic()) || key.is_empty() {
            break;
        }
        if key == "escape" {
            match value.trim() {
                "`" => escape = '`',
                _ => escape = '\\',
            }
        }
        i += 1;
    }

    let mut out = Vec::new();
    while i < lines.len() {
        let first = lines[i].trim_start();
        if first.is_empty() || first.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i;
        let mut joined = String::new();
        loop {
            let line = lines[i].trim_end();
            i += 1;
            match line.strip_suffix(escape) {
                Some(head) => {
                    joined.push_str(head);
                    joined.push(' ');
                    // Comment and blank lines inside a continuation are dropped.
                    while i < lines.len() && {
                        let t = lines[i].trim_start();
                        t.is_empty() || t.starts_with('#')
                    } {
                        i += 1;
                    }
                    if i >= lines.len() {
                        break;
                    }
                }
                None => {
                    joined.push_str(line);
                    break;
                }
            }
        }
        let (keyword, _) = split_keyword(&joined);
        if matches!(
            keyword.to_ascii_uppercase().as_str(),
            "RUN" | "COPY" | "ADD"
        ) {
            for (delimiter, strip_tabs) in heredoc_markers(&joined) {
                while i < lines.len() {
                    let body = lines[i];
                    i += 1;
                    let body = if strip_tabs {
                        body.trim_start_matches('\t')
                    } else {
                        body
                    };
                    if body == delimiter {
                        break;
                    }
                }
            }
        }
        out.push(Instruction {
            line: u32::try_from(start + 1).unwrap_or(u32::MAX),
            text: joined,
        });
    }
    out
}

/// Heredoc openers in an instruction, in order: `<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`.
/// Returns each delimiter and whether leading tabs are stripped from the body (`<<-`).
fn heredoc_markers(instruction: &str) -> Vec<(String, bool)> {
    let mut markers = Vec::new();
    let mut rest = instruction;
    while let Some(pos) = rest.find("<<") {
        rest = &rest[pos + 2..];
        if rest.starts_with('<') {
            // `<<<` is a here-string, not a heredoc.
            rest = rest.trim_start_matches('<');
            continue;
        }
        let (strip_tabs, after_dash) = match rest.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let (quote, word_start) = match after_dash.chars().next() {
            Some(q @ ('"' | '\'')) => (Some(q), &after_dash[1..]),
            _ => (None, after_dash),
        };
        let len = word_start
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(word_start.len());
        if len == 0 {
            continue;
        }
        let word = &word_start[..len];
        let mut after = &word_start[len..];
        if let Some(q) = quote {
            after = after.strip_prefix(q).unwrap_or(after);
        }
        markers.push((word.to_string(), strip_tabs));
        rest = after;
    }
    markers
}

/// The first word and the rest of an instruction.
fn split_keyword(instruction: &str) -> (&str, &str) {
    let t = instruction.trim_start();
    match t.find(char::is_whitespace) {
        Some(i) => (&t[..i], t[i..].trim_start()),
        None => (t, ""),
    }
}

/// Splits `ARG` arguments, honouring single and double quotes.
fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    current.push(n);
                }
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

/// Expands `$V`, `${V}`, `${V:-word}`, `${V-word}`, `${V:+word}` and `${V+word}`, as
/// Dockerfile variable substitution does. Names without a value expand to nothing and are
/// collected in `unresolved`.
fn substitute(
    input: &str,
    vars: &BTreeMap<String, String>,
    unresolved: &mut Vec<String>,
) -> String {
    let mut out = String::new();
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek() == Some(&'$') {
            out.push('$');
            chars.next();
            continue;
        }
        if c != '$' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'{') {
            chars.next();
            let mut body = String::new();
            let mut depth = 1;
            for c in chars.by_ref() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                body.push(c);
            }
            let name_len = body
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(body.len());
            let (name, modifier) = body.split_at(name_len);
            let value = vars.get(name).map(String::as_str);
            let set_nonempty = value.is_some_and(|v| !v.is_empty());
            let expanded = if let Some(word) = modifier.strip_prefix(":-") {
                if set_nonempty {
                    value.unwrap_or_default().to_string()
                } else {
                    substitute(word, vars, unresolved)
                }
            } else if let Some(word) = modifier.strip_prefix(":+") {
                if set_nonempty {
                    substitute(word, vars, unresolved)
                } else {
                    String::new()
                }
            } else if let Some(word) = modifier.strip_prefix('-') {
                match value {
                    Some(v) => v.to_string(),
                    None => substitute(word, vars, unresolved),
                }
            } else if let Some(word) = modifier.strip_prefix('+') {
                if value.is_some() {
                    substitute(word, vars, unresolved)
                } else {
                    String::new()
                }
            } else {
                if !set_nonempty {
                    unresolved.push(name.to_string());
                }
                value.unwrap_or_default().to_string()
            };
            out.push_str(&expanded);
        } else {
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    name.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            if name.is_empty() {
                out.push('$');
                continue;
            }
            match vars.get(&name).filter(|v| !v.is_empty()) {
                Some(v) => out.push_str(v),
                None => unresolved.push(name),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn substitution_forms() {
        let v = vars(&[("A", "x"), ("EMPTY", "")]);
        let mut u = Vec::new();
        assert_eq!(substitute("$A/${A}", &v, &mut u), "x/x");
        assert_eq!(substitute("${MISSING:-d}", &v, &mut u), "d");
        assert_eq!(substitute("${EMPTY:-d}", &v, &mut u), "d");
        assert_eq!(substitute("${EMPTY-d}", &v, &mut u), "");
        assert_eq!(substitute("${A:+set}", &v, &mut u), "set");
        assert_eq!(substitute("${MISSING:+set}", &v, &mut u), "");
        assert_eq!(substitute("\\$A", &v, &mut u), "$A");
        assert!(u.is_empty());
        assert_eq!(substitute("img:$NOPE", &v, &mut u), "img:");
        assert_eq!(u, vec!["NOPE".to_string()]);
    }

    #[test]
    fn heredoc_markers_in_order() {
        assert_eq!(
            heredoc_markers("RUN <<EOF <<-'TWO' cat"),
            vec![("EOF".to_string(), false), ("TWO".to_string(), true)]
        );
        assert!(heredoc_markers("RUN cat <<< word").is_empty());
    }

    #[test]
    fn shell_words_quotes() {
        assert_eq!(
            shell_words(r#"A="x y" B='z' C"#),
            vec!["A=x y".to_string(), "B=z".to_string(), "C".to_string()]
        );
    }
}
