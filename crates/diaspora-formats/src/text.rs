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
}
