//! URL building and reading: the one path-segment encoder and the one `Link` header parser.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, LINK};

/// Bytes a path segment keeps as they are: RFC 3986 "unreserved" (`A-Z a-z 0-9 - . _ ~`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one URL path segment (a `/` becomes `%2F`: `refs/pr/1` is one revision).
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Percent-encodes a `/`-separated path (a repo id, a file path), keeping the `/`s.
pub fn encode_path(s: &str) -> String {
    s.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

/// The target of the first `Link` entry with `rel="{rel}"` (or unquoted `rel={rel}`).
pub fn link_target<'h>(headers: &'h HeaderMap, rel: &str) -> Option<&'h str> {
    let quoted = format!("rel=\"{rel}\"");
    let bare = format!("rel={rel}");
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find(|part| {
            part.split(';')
                .skip(1)
                .any(|p| p.trim() == quoted || p.trim() == bare)
        })
        .and_then(|part| {
            let part = part.trim();
            let start = part.find('<')? + 1;
            let end = part.find('>')?;
            (end > start).then(|| &part[start..end])
        })
}

/// The `rel="next"` paging target of a response.
pub fn next_link(headers: &HeaderMap) -> Option<&str> {
    link_target(headers, "next")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(LINK, v.parse().expect("header"));
        h
    }

    #[test]
    fn segments_and_paths_are_encoded() {
        assert_eq!(encode_segment("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(encode_segment("main"), "main");
        assert_eq!(encode_segment("a b#?%"), "a%20b%23%3F%25");
        assert_eq!(encode_path("dir/my model.gguf"), "dir/my%20model.gguf");
        assert_eq!(encode_path("org/model-1.5_x~"), "org/model-1.5_x~");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }

    #[test]
    fn link_header_next_is_found() {
        let h = links("<http://x/api/models/a/b/tree/c?cursor=3>; rel=\"next\"");
        assert_eq!(
            next_link(&h),
            Some("http://x/api/models/a/b/tree/c?cursor=3")
        );
        assert_eq!(next_link(&links("<http://h/x>; rel=\"prev\"")), None);
        assert_eq!(
            next_link(&links("<http://h/x>; rel=next")),
            Some("http://h/x")
        );
    }

    #[test]
    fn link_header_with_several_relations() {
        let h = links(
            "<https://a/next>; rel=\"next\", <https://hub/api/models/o/m/xet-read-token/abc>; rel=\"xet-auth\"",
        );
        assert_eq!(
            link_target(&h, "xet-auth"),
            Some("https://hub/api/models/o/m/xet-read-token/abc")
        );
        assert_eq!(link_target(&h, "next"), Some("https://a/next"));
        assert_eq!(link_target(&h, "prev"), None);
    }
}
