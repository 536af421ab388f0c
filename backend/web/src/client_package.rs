//! The Python client (`clients/python`) served by every Riposte as a source
//! archive pip installs: `pip install http://HOST/clients/riposte-client.zip`.
//! Competitors get the client from the event's own server, the version that
//! matches it, with no package index; the starters need it.

use std::io::Write;
use std::sync::OnceLock;

use actix_web::{HttpResponse, web};

/// The client's files, compiled in: (path inside the archive, bytes).
const FILES: [(&str, &[u8]); 6] = [
    (
        "pyproject.toml",
        include_bytes!("../../../clients/python/pyproject.toml"),
    ),
    (
        "README.md",
        include_bytes!("../../../clients/python/README.md"),
    ),
    (
        "src/riposte/__init__.py",
        include_bytes!("../../../clients/python/src/riposte/__init__.py"),
    ),
    (
        "src/riposte/client.py",
        include_bytes!("../../../clients/python/src/riposte/client.py"),
    ),
    (
        "src/riposte/errors.py",
        include_bytes!("../../../clients/python/src/riposte/errors.py"),
    ),
    (
        "src/riposte/py.typed",
        include_bytes!("../../../clients/python/src/riposte/py.typed"),
    ),
];

/// Where the archive is served.
pub const PATH: &str = "/clients/riposte-client.zip";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(PATH, web::get().to(download));
}

async fn download() -> HttpResponse {
    match archive() {
        Ok(bytes) => HttpResponse::Ok()
            .content_type("application/zip")
            .insert_header(("Cache-Control", "public, max-age=3600"))
            .insert_header((
                "Content-Disposition",
                "attachment; filename=\"riposte-client.zip\"",
            ))
            .body(bytes.clone()),
        Err(e) => actix_web::ResponseError::error_response(&crate::error::ApiError::internal(
            anyhow::anyhow!("building the client archive: {e}"),
        )),
    }
}

/// The zip, made once: one top-level folder `riposte-client/`, as pip expects
/// of a source tree.
fn archive() -> Result<&'static Vec<u8>, String> {
    static ZIP: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    ZIP.get_or_init(|| build().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}

fn build() -> zip::result::ZipResult<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    for (path, bytes) in FILES {
        zip.start_file(format!("riposte-client/{path}"), options)?;
        zip.write_all(bytes)?;
    }
    Ok(zip.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_holds_every_file_under_one_folder() {
        let bytes = archive().unwrap();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.as_slice())).unwrap();
        assert_eq!(zip.len(), FILES.len());
        for (path, expected) in FILES {
            let mut entry = zip.by_name(&format!("riposte-client/{path}")).unwrap();
            let mut got = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut got).unwrap();
            assert_eq!(got, expected, "{path}");
        }
    }
}
