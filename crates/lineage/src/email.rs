//! `report stale --email-to`: the report as an email, the plain-text report as the body with
//! the Markdown table as an alternative part, sent over SMTP with lettre. TLS is required
//! (STARTTLS on `smtp://`, implicit TLS on `smtps://`) except to a loopback relay, where a
//! local MTA listens without it; credentials never travel without TLS.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Message, SmtpTransport, Transport};

use crate::CliError;

/// How to reach the SMTP relay, decided from `--smtp` alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub user: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtps://`: TLS from the first byte (port 465 by default).
    ImplicitTls,
    /// `smtp://` to anything but loopback: STARTTLS, and the send fails without it.
    StartTls,
    /// `smtp://` to loopback: a local relay, no TLS.
    Plain,
}

/// The relay used when no `--smtp` is given: a local MTA.
pub const DEFAULT_SMTP: &str = "smtp://localhost:25";

/// Parses `smtp://[USER@]HOST[:PORT]` or `smtps://…`. A password in the URL is refused: it
/// would show in process lists and shell history (LINEAGE_SMTP_PASSWORD carries it).
pub fn parse_relay(url: &str) -> Result<Relay, CliError> {
    let bad = |problem: &str| {
        CliError::new(
            format!("--smtp `{url}` {problem}"),
            "write `--smtp smtp://mail.acme.dev:587` (STARTTLS), `--smtp smtps://mail.acme.dev` or `--smtp smtp://localhost:25`",
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("is not a URL"))?;
    let rest = rest.trim_end_matches('/');
    let (user, authority) = match rest.rsplit_once('@') {
        Some((u, a)) => (Some(u), a),
        None => (None, rest),
    };
    if user.is_some_and(|u| u.contains(':')) {
        return Err(CliError::new(
            format!("--smtp `{}` has a password in it", url.split('@').next_back().unwrap_or("")),
            "give only the user in the URL (`smtp://USER@HOST:587`) and the password in LINEAGE_SMTP_PASSWORD",
        ));
    }
    if authority.contains(['/', '?', '#']) {
        return Err(bad("has a path; give only the host and port"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h,
            Some(p.parse::<u16>().map_err(|_| bad("has a bad port"))?),
        ),
        _ => (authority, None),
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    let (security, default_port) = match scheme {
        "smtps" => (Security::ImplicitTls, 465),
        "smtp" if crate::registry::is_loopback(host) => (Security::Plain, 25),
        "smtp" => (Security::StartTls, 587),
        _ => return Err(bad("is neither smtp:// nor smtps://")),
    };
    Ok(Relay {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port: port.unwrap_or(default_port),
        security,
        user: user.map(str::to_string),
    })
}

/// What to send.
pub struct Mail<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    pub subject: String,
    pub text: String,
    pub markdown: String,
}

fn mailbox(value: &str, flag: &str) -> Result<Mailbox, CliError> {
    value.parse::<Mailbox>().map_err(|e| {
        CliError::new(
            format!("{flag} `{value}` is not an email address: {e}"),
            format!("write e.g. `{flag} team@acme.dev`"),
        )
    })
}

/// Checks the addresses before anything is read or sent.
pub fn check_addresses(from: &str, to: &[String]) -> Result<(), CliError> {
    mailbox(from, "--email-from")?;
    for t in to {
        mailbox(t, "--email-to")?;
    }
    Ok(())
}

pub fn send(relay: &Relay, password: Option<&str>, mail: Mail<'_>) -> Result<(), CliError> {
    let mut builder = Message::builder()
        .from(mailbox(mail.from, "--email-from")?)
        .subject(mail.subject);
    for t in mail.to {
        builder = builder.to(mailbox(t, "--email-to")?);
    }
    let markdown = ContentType::parse("text/markdown; charset=utf-8").expect("constant type");
    let message = builder
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(mail.text),
                )
                .singlepart(SinglePart::builder().header(markdown).body(mail.markdown)),
        )
        .map_err(|e| {
            CliError::new(
                format!("cannot build the email: {e}"),
                "report this as a bug",
            )
        })?;
    let shown = format!("{}:{}", relay.host, relay.port);
    let setup = |e: lettre::transport::smtp::Error| {
        CliError::new(
            format!("cannot set up SMTP to `{shown}`: {e}"),
            "check `--smtp`",
        )
    };
    let builder = match relay.security {
        Security::ImplicitTls => SmtpTransport::relay(&relay.host).map_err(setup)?,
        Security::StartTls => SmtpTransport::starttls_relay(&relay.host).map_err(setup)?,
        Security::Plain => SmtpTransport::builder_dangerous(&relay.host),
    };
    let mut builder = builder
        .port(relay.port)
        .timeout(Some(Duration::from_secs(30)));
    if let Some(user) = &relay.user {
        let Some(password) = password else {
            return Err(CliError::new(
                format!("`--smtp` names the user `{user}` but no password is set"),
                "set LINEAGE_SMTP_PASSWORD",
            ));
        };
        builder = builder.credentials(Credentials::new(user.clone(), password.to_string()));
    }
    builder.build().send(&message).map_err(|e| {
        CliError::new(
            format!("sending the report through `{shown}` failed: {e}"),
            match relay.security {
                Security::StartTls => "the relay must offer STARTTLS; check `--smtp` (port 587 usually) and that the relay is up",
                _ => "check `--smtp` and that the relay is up",
            },
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_required_except_to_loopback() {
        let r = parse_relay("smtp://mail.acme.dev").unwrap();
        assert_eq!((r.security, r.port), (Security::StartTls, 587));
        let r = parse_relay("smtps://bot@mail.acme.dev").unwrap();
        assert_eq!(
            (r.security, r.port, r.user.as_deref()),
            (Security::ImplicitTls, 465, Some("bot"))
        );
        for local in [
            "smtp://localhost",
            "smtp://127.0.0.1:2525",
            "smtp://[::1]:25",
        ] {
            assert_eq!(
                parse_relay(local).unwrap().security,
                Security::Plain,
                "{local}"
            );
        }
        // A private address is not loopback: STARTTLS.
        assert_eq!(
            parse_relay("smtp://10.0.0.5:25").unwrap().security,
            Security::StartTls
        );
    }

    #[test]
    fn bad_relays_are_refused_with_the_form_to_write() {
        for bad in [
            "mail.acme.dev",
            "http://mail",
            "smtp://",
            "smtp://h:x",
            "smtp://h/path",
        ] {
            let e = parse_relay(bad).unwrap_err();
            assert!(e.hint.unwrap().contains("--smtp smtp://"), "{bad}");
        }
        let e = parse_relay("smtp://bot:hunter2@mail.acme.dev").unwrap_err();
        assert!(!e.message.contains("hunter2"), "{}", e.message);
        assert!(e.hint.unwrap().contains("LINEAGE_SMTP_PASSWORD"));
    }
}
