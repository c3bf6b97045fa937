//! Safetensors encoding of named `f32` tensors, with atomic writes.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensorError, SafeTensors};

use crate::{NamedTensor, NnError};

/// Metadata key/value written into every file this crate saves.
pub(crate) const FORMAT_KEY: &str = "format";
/// Value of [`FORMAT_KEY`].
pub(crate) const FORMAT_VALUE: &str = "softgfn-nn/parameters-v1";

fn format_err(path: &Path, reason: impl Into<String>) -> NnError {
    NnError::Format {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn describe(e: &SafeTensorError) -> String {
    match e {
        SafeTensorError::HeaderTooSmall
        | SafeTensorError::InvalidHeaderLength
        | SafeTensorError::MetadataIncompleteBuffer => {
            format!("the file is truncated or not a safetensors file ({e:?})")
        }
        SafeTensorError::InvalidHeader
        | SafeTensorError::InvalidHeaderStart
        | SafeTensorError::InvalidHeaderDeserialization
        | SafeTensorError::HeaderTooLarge => {
            format!("the header is not valid safetensors json ({e:?})")
        }
        other => format!("corrupt safetensors data ({other:?})"),
    }
}

/// Serializes `tensors` (all `f32`) with `metadata` and writes them to `path` atomically: a
/// temporary file in the same directory is written, fsynced and renamed over `path`.
pub(crate) fn write(
    path: &Path,
    tensors: &[NamedTensor],
    metadata: HashMap<String, String>,
) -> Result<(), NnError> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.data.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            TensorView::new(Dtype::F32, t.shape.clone(), b)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| format_err(path, format!("cannot encode `{}`: {e:?}", t.name)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let encoded = safetensors::serialize(views, &Some(metadata))
        .map_err(|e| format_err(path, format!("cannot encode: {e:?}")))?;
    write_atomic(path, &encoded)
}

/// Writes `bytes` to `path` via a fsynced temporary file in the same directory and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NnError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let io_err = |source| NnError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file_name = path.file_name().ok_or_else(|| {
        io_err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "expected a file path, found a path without a file name",
        ))
    })?;
    let dir: PathBuf = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        file_name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(e));
    }
    // Persist the rename itself (best effort: not every platform can open a directory).
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads every tensor of a safetensors file; all must be `f32`.
pub(crate) fn read(path: &Path) -> Result<Vec<NamedTensor>, NnError> {
    let bytes = fs::read(path).map_err(|source| NnError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| format_err(path, describe(&e)))?;
    let mut out = Vec::with_capacity(st.len());
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(format_err(
                path,
                format!("tensor `{name}` has dtype {:?}, expected F32", view.dtype()),
            ));
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push(NamedTensor {
            name,
            shape: view.shape().to_vec(),
            data,
        });
    }
    Ok(out)
}

/// Writes named `f32` tensors to a safetensors file atomically (temporary file, fsync, rename).
pub fn save_tensors(path: &Path, tensors: &[NamedTensor]) -> Result<(), NnError> {
    write(path, tensors, HashMap::new())
}

/// Reads every tensor of a safetensors file written by [`save_tensors`] (all `f32`).
pub fn load_tensors(path: &Path) -> Result<Vec<NamedTensor>, NnError> {
    read(path)
}
