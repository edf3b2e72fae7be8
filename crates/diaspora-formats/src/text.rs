use diaspora_core::{Error, Result};
use std::borrow::Cow;

/// Decodes input bytes to UTF-8 by their byte-order mark: UTF-16LE/BE are converted, a UTF-8 BOM is dropped,
/// anything else is returned as is (invalid UTF-8 is then handled per field by the reader).
pub fn decode_text(bytes: &[u8]) -> Cow<'_, [u8]> {
    if let Some((enc, bom_len)) = encoding_rs::Encoding::for_bom(bytes) {
        if enc == encoding_rs::UTF_8 {
            return Cow::Borrowed(&bytes[bom_len..]);
        }
        let (text, _) = enc.decode_without_bom_handling(&bytes[bom_len..]);
        return Cow::Owned(text.into_owned().into_bytes());
    }
    Cow::Borrowed(bytes)
}

/// Decodes text in a declared encoding (a WHATWG label such as `windows-1251`, `koi8-r`, `utf-16le`), or, when
/// none is declared, by BOM, then as UTF-8 if valid, else as the more likely of Windows-1251 and KOI8-R (Russian
/// exports from Windows). Returns the UTF-8 bytes and the encoding used.
pub fn decode_with<'a>(bytes: &'a [u8], declared: Option<&str>, name: &str) -> Result<(Cow<'a, [u8]>, &'static str)> {
    if let Some(label) = declared {
        let enc = encoding_rs::Encoding::for_label(label.trim().as_bytes())
            .ok_or_else(|| Error::config(format!("{name}: unknown encoding {label:?}")))?;
        let (text, _, _) = enc.decode(bytes);
        return Ok((Cow::Owned(text.into_owned().into_bytes()), enc.name()));
    }
    if let Some((enc, _)) = encoding_rs::Encoding::for_bom(bytes) {
        return Ok((decode_text(bytes), enc.name()));
    }
    // UTF-8 when it decodes, or when it is mostly UTF-8 with a few damaged bytes (those fields become rejects);
    // a single-byte Russian encoding when no multi-byte character decodes at all.
    let (mut good, mut bad) = (0usize, 0usize);
    for chunk in bytes.utf8_chunks() {
        good += chunk.valid().chars().filter(|c| !c.is_ascii()).count();
        bad += chunk.invalid().len();
    }
    if bad == 0 || good > bad {
        return Ok((Cow::Borrowed(bytes), "UTF-8"));
    }
    let enc = guess_cyrillic(bytes);
    let (text, _) = enc.decode_without_bom_handling(bytes);
    Ok((Cow::Owned(text.into_owned().into_bytes()), enc.name()))
}

/// Windows-1251 puts lower-case Cyrillic at 0xE0–0xFF and capitals at 0xC0–0xDF; KOI8-R the other way round.
/// Running text is mostly lower case, so the busier half tells them apart.
fn guess_cyrillic(bytes: &[u8]) -> &'static encoding_rs::Encoding {
    let upper_half = bytes.iter().filter(|b| (0xE0..=0xFF).contains(*b)).count();
    let lower_half = bytes.iter().filter(|b| (0xC0..=0xDF).contains(*b)).count();
    if lower_half > upper_half { encoding_rs::KOI8_R } else { encoding_rs::WINDOWS_1251 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boms_are_handled() {
        assert_eq!(&*decode_text(b"\xEF\xBB\xBFa,b"), b"a,b");
        let utf16: Vec<u8> =
            [0xFF, 0xFE].into_iter().chain("Грузия".encode_utf16().flat_map(u16::to_le_bytes)).collect();
        assert_eq!(&*decode_text(&utf16), "Грузия".as_bytes());
        assert_eq!(&*decode_text(b"plain"), b"plain");
    }

    #[test]
    fn russian_single_byte_encodings_are_told_apart() {
        let text = "Страна проживания,Грузия\nОбразование,Высшее\n";
        for enc in [encoding_rs::WINDOWS_1251, encoding_rs::KOI8_R] {
            let (bytes, _, _) = enc.encode(text);
            let (decoded, used) = decode_with(&bytes, None, "t").unwrap();
            assert_eq!(std::str::from_utf8(&decoded).unwrap(), text, "{}", enc.name());
            assert_eq!(used, enc.name());
        }
        let (bytes, _, _) = encoding_rs::KOI8_R.encode(text);
        let (decoded, _) = decode_with(&bytes, Some("koi8-r"), "t").unwrap();
        assert_eq!(std::str::from_utf8(&decoded).unwrap(), text);
        assert!(decode_with(b"x", Some("klingon"), "t").is_err());
    }
}
