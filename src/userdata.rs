//! Decodes EC2 userdata into nodewarden's TOML settings, without I/O. Accepts plain TOML,
//! gzip-compressed userdata (by magic bytes), and cloud-init multipart MIME, where the part
//! whose Content-Type is `application/toml` holds the settings and other parts are ignored.

use std::io::Read;

use flate2::read::GzDecoder;
use mail_parser::{MessageParser, MimeHeaders, PartType};

/// Userdata is at most 16 KiB on EC2; anything past 1 MiB after decompression is an attack or
/// a mistake, and is refused rather than allowed to exhaust memory.
pub const MAX_DECODED_BYTES: usize = 1 << 20;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// What userdata holds for nodewarden.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Userdata {
    /// No nodewarden settings; says why (empty, a shell script, a MIME message without TOML…).
    NoSettings(&'static str),
    /// The settings TOML text.
    Toml(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserdataError {
    #[error("userdata is larger than {MAX_DECODED_BYTES} bytes after decompression; settings must be small")]
    TooLarge,
    #[error("userdata starts like gzip but does not decompress: {0}")]
    Gzip(String),
    #[error("userdata settings are not UTF-8 text (byte {0}); save the TOML as UTF-8")]
    NotUtf8(usize),
    #[error("userdata looks like a MIME message but cannot be parsed; check the boundary and headers")]
    Mime,
    #[error("userdata has {0} application/toml parts; put all nodewarden settings in one part")]
    SeveralTomlParts(usize),
}

/// Decodes raw userdata bytes.
pub fn decode(bytes: &[u8]) -> Result<Userdata, UserdataError> {
    if bytes.len() > MAX_DECODED_BYTES {
        return Err(UserdataError::TooLarge);
    }
    let unzipped;
    let bytes = if bytes.starts_with(&GZIP_MAGIC) {
        unzipped = gunzip(bytes)?;
        &unzipped[..]
    } else {
        bytes
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Userdata::NoSettings("userdata is empty"));
    }
    if looks_like_mime(bytes) {
        return from_mime(bytes);
    }
    if let Some(reason) = other_consumer(bytes) {
        return Ok(Userdata::NoSettings(reason));
    }
    utf8(bytes).map(Userdata::Toml)
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, UserdataError> {
    let mut out = Vec::new();
    // Read one byte past the cap to tell "exactly at the cap" from "over it".
    GzDecoder::new(bytes)
        .take(MAX_DECODED_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| UserdataError::Gzip(e.to_string()))?;
    if out.len() > MAX_DECODED_BYTES {
        return Err(UserdataError::TooLarge);
    }
    Ok(out)
}

fn utf8(bytes: &[u8]) -> Result<String, UserdataError> {
    String::from_utf8(bytes.to_vec()).map_err(|e| UserdataError::NotUtf8(e.utf8_error().valid_up_to()))
}

/// A MIME message starts with a header line; TOML never has `Name: value` at the top.
fn looks_like_mime(bytes: &[u8]) -> bool {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(0);
    let head = &bytes[start..bytes.len().min(start + 64)];
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    head.starts_with("content-type:") || head.starts_with("mime-version:")
}

/// Userdata meant for cloud-init or a shell rather than for nodewarden.
fn other_consumer(bytes: &[u8]) -> Option<&'static str> {
    let prefixes: [(&[u8], &'static str); 6] = [
        (b"#!", "userdata is a script"),
        (b"#cloud-config", "userdata is cloud-config"),
        (b"#cloud-boothook", "userdata is a cloud-init boothook"),
        (b"#include", "userdata is a cloud-init include list"),
        (b"#part-handler", "userdata is a cloud-init part handler"),
        (b"#upstart-job", "userdata is an upstart job"),
    ];
    prefixes.iter().find(|(prefix, _)| bytes.starts_with(prefix)).map(|(_, reason)| *reason)
}

fn from_mime(bytes: &[u8]) -> Result<Userdata, UserdataError> {
    let message = MessageParser::default().parse(bytes).ok_or(UserdataError::Mime)?;
    let toml_parts: Vec<&[u8]> = message
        .parts
        .iter()
        .filter(|part| !matches!(part.body, PartType::Multipart(_)))
        .filter(|part| {
            part.content_type().is_some_and(|ct| {
                ct.ctype().eq_ignore_ascii_case("application")
                    && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("toml"))
            })
        })
        .map(|part| part.contents())
        .collect();
    match toml_parts.as_slice() {
        [] => Ok(Userdata::NoSettings("multipart userdata has no application/toml part")),
        [one] if one.starts_with(&GZIP_MAGIC) => utf8(&gunzip(one)?).map(Userdata::Toml),
        [one] => utf8(one).map(Userdata::Toml),
        many => Err(UserdataError::SeveralTomlParts(many.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use proptest::prelude::*;
    use std::io::Write;

    pub fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).expect("writing to a Vec cannot fail");
        encoder.finish().expect("writing to a Vec cannot fail")
    }

    const SETTINGS: &str = "[ecs]\ncluster = \"prod-web\"\n";

    fn multipart(parts: &[(&str, &str)]) -> String {
        let mut out = String::from("Content-Type: multipart/mixed; boundary=\"==BOUNDARY==\"\nMIME-Version: 1.0\n\n");
        for (content_type, body) in parts {
            out.push_str(&format!("--==BOUNDARY==\nContent-Type: {content_type}\nMIME-Version: 1.0\n\n{body}\n"));
        }
        out.push_str("--==BOUNDARY==--\n");
        out
    }

    #[test]
    fn plain_and_gzip_toml() {
        assert_eq!(decode(SETTINGS.as_bytes()), Ok(Userdata::Toml(SETTINGS.into())));
        assert_eq!(decode(&gzip(SETTINGS.as_bytes())), Ok(Userdata::Toml(SETTINGS.into())));
    }

    #[test]
    fn empty_and_foreign_userdata_hold_no_settings() {
        assert!(matches!(decode(b""), Ok(Userdata::NoSettings(_))));
        assert!(matches!(decode(b" \n\t"), Ok(Userdata::NoSettings(_))));
        assert!(matches!(decode(&gzip(b"")), Ok(Userdata::NoSettings(_))));
        assert!(matches!(decode(b"#!/bin/bash\necho hi\n"), Ok(Userdata::NoSettings("userdata is a script"))));
        assert!(matches!(decode(b"#cloud-config\nruncmd: []\n"), Ok(Userdata::NoSettings(_))));
    }

    #[test]
    fn multipart_takes_the_toml_part_and_ignores_the_rest() {
        let text = multipart(&[
            ("text/cloud-config; charset=\"us-ascii\"", "#cloud-config\nbootcmd:\n  - echo hi"),
            ("application/toml", SETTINGS.trim_end()),
            ("text/x-shellscript", "#!/bin/sh\necho [ecs]"),
        ]);
        assert_eq!(decode(text.as_bytes()), Ok(Userdata::Toml(SETTINGS.trim_end().into())));
        assert_eq!(decode(&gzip(text.as_bytes())), Ok(Userdata::Toml(SETTINGS.trim_end().into())));
        let none = multipart(&[("text/x-shellscript", "#!/bin/sh\necho hi")]);
        assert!(matches!(decode(none.as_bytes()), Ok(Userdata::NoSettings(_))));
        let two = multipart(&[("application/toml", SETTINGS), ("application/toml", SETTINGS)]);
        assert_eq!(decode(two.as_bytes()), Err(UserdataError::SeveralTomlParts(2)));
    }

    #[test]
    fn base64_parts_are_decoded() {
        let body = "W2Vjc10KY2x1c3RlciA9ICJwcm9kLXdlYiIK"; // base64 of SETTINGS
        let text = format!(
            "Content-Type: multipart/mixed; boundary=\"b\"\nMIME-Version: 1.0\n\n--b\nContent-Type: application/toml\n\
             Content-Transfer-Encoding: base64\n\n{body}\n--b--\n"
        );
        assert_eq!(decode(text.as_bytes()), Ok(Userdata::Toml(SETTINGS.into())));
    }

    #[test]
    fn compression_bombs_are_refused() {
        let bomb = gzip(&vec![b'#'; MAX_DECODED_BYTES + 1]);
        assert!(bomb.len() < 16 * 1024, "the bomb is small on the wire");
        assert_eq!(decode(&bomb), Err(UserdataError::TooLarge));
        let at_cap = gzip(&vec![b'#'; MAX_DECODED_BYTES]);
        assert!(matches!(decode(&at_cap), Ok(Userdata::Toml(_))));
    }

    #[test]
    fn broken_gzip_and_binary_are_errors() {
        assert!(matches!(decode(&[0x1f, 0x8b, 0, 1, 2]), Err(UserdataError::Gzip(_))));
        assert_eq!(decode(b"[ecs]\n\xff\xfe"), Err(UserdataError::NotUtf8(6)));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decode(&bytes);
            let _ = decode(&gzip(&bytes));
        }

        #[test]
        fn arbitrary_mime_never_panics(body in "[ -~\n]{0,400}", ctype in "(application/toml|text/plain|multipart/mixed; boundary=b)") {
            let text = format!("Content-Type: {ctype}\nMIME-Version: 1.0\n\n--b\nContent-Type: {ctype}\n\n{body}\n--b--\n");
            let _ = decode(text.as_bytes());
        }
    }
}
