//! Downloads: tables as CSV, charts as standalone SVG files.

use wasm_bindgen::JsCast;

/// One CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
fn field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// A CSV document: a header line and one line per row, `\n`-terminated.
pub fn csv(header: &[&str], rows: &[Vec<String>]) -> String {
    let line = |cells: Vec<String>| cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(",");
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.clone()));
        out.push('\n');
    }
    out
}

/// Makes `markup` (an `<svg>` element's outer HTML) a standalone SVG document by adding the
/// SVG namespace when the browser's serialisation left it out.
pub fn standalone_svg(markup: &str) -> String {
    if markup.contains("xmlns=") {
        markup.to_owned()
    } else {
        markup.replacen("<svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"", 1)
    }
}

/// Offers `content` as a file download named `filename`.
///
/// Does nothing outside a browser page (no `window`/`document`).
pub fn download(filename: &str, mime: &str, content: &str) {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let parts = js_sys::Array::of1(&content.into());
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options) else {
        return;
    };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else {
        return;
    };
    if let Some(anchor) = document
        .create_element("a")
        .ok()
        .and_then(|a| a.dyn_into::<web_sys::HtmlAnchorElement>().ok())
    {
        anchor.set_href(&url);
        anchor.set_download(filename);
        anchor.click();
    }
    let _ = web_sys::Url::revoke_object_url(&url);
}

/// Downloads the `<svg>` inside the element with id `container` as `filename`.
pub fn download_svg(container: &str, filename: &str) {
    let svg = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(container))
        .and_then(|c| c.query_selector("svg").ok().flatten());
    if let Some(svg) = svg {
        download(
            filename,
            "image/svg+xml",
            &standalone_svg(&svg.outer_html()),
        );
    }
}
