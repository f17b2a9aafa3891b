//! Python access to the marshal layer: round trips and pyc header facts, for tests that
//! drive it over a real stdlib.

use crate::marshal::{self, MarshalError, PyVersion, PycSource};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

fn value_error(e: MarshalError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// Parse marshal `data` as written by Python `version` (e.g. `(3, 12)`) and write it back.
/// For data produced by that CPython the result equals `data`; trailing bytes are dropped.
#[pyfunction]
fn roundtrip_marshal<'py>(py: Python<'py>, data: &[u8], version: (u8, u8)) -> PyResult<Bound<'py, PyBytes>> {
    let version = PyVersion::new(version.0, version.1);
    let obj = marshal::loads(data, version).map_err(value_error)?;
    let out = marshal::dumps(&obj, version).map_err(value_error)?;
    Ok(PyBytes::new(py, &out))
}

/// Parse a whole pyc file (header and code) and write it back.
#[pyfunction]
fn pyc_roundtrip<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let pyc = marshal::read_pyc(data).map_err(value_error)?;
    let out = marshal::write_pyc(&pyc).map_err(value_error)?;
    Ok(PyBytes::new(py, &out))
}

/// Header facts of a pyc file: magic, version, flags, mtime/source_size or hash/check_source,
/// and the top-level code object's name and filename.
#[pyfunction]
fn pyc_info<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let pyc = marshal::read_pyc(data).map_err(value_error)?;
    let info = PyDict::new(py);
    info.set_item("magic", pyc.magic)?;
    info.set_item("version", (pyc.version.major, pyc.version.minor))?;
    info.set_item("flags", pyc.flags())?;
    match pyc.source {
        PycSource::Timestamp { mtime, size } => {
            info.set_item("mtime", mtime)?;
            info.set_item("source_size", size)?;
        }
        PycSource::Hash { hash, check_source } => {
            info.set_item("hash", PyBytes::new(py, &hash))?;
            info.set_item("check_source", check_source)?;
        }
    }
    if let Some(code) = pyc.code.as_code() {
        info.set_item("name", code.name.as_str().map(|s| s.into_owned()))?;
        info.set_item("filename", code.filename.as_str().map(|s| s.into_owned()))?;
    }
    Ok(info)
}

/// Read a pyc of any supported version: its header facts (as `pyc_info`) and the module code
/// re-marshalled by the Rust writer, which the running interpreter can load when the pyc is of
/// its own version.
#[pyfunction]
fn read_pyc_parts<'py>(py: Python<'py>, data: &[u8]) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyBytes>)> {
    let info = pyc_info(py, data)?;
    let pyc = marshal::read_pyc(data).map_err(value_error)?;
    let payload = marshal::dumps(&pyc.code, pyc.version).map_err(value_error)?;
    Ok((info, PyBytes::new(py, &payload)))
}

/// Build a pyc for `version` around marshalled code `payload` (checked by parsing it), with a
/// timestamp header (`mtime`, `source_size`) or a PEP 552 hash header (`source_hash`).
#[pyfunction]
#[pyo3(signature = (payload, version, *, mtime=None, source_size=None, source_hash=None, check_source=true))]
fn build_pyc<'py>(
    py: Python<'py>,
    payload: &[u8],
    version: (u8, u8),
    mtime: Option<u32>,
    source_size: Option<u32>,
    source_hash: Option<&[u8]>,
    check_source: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let version = PyVersion::new(version.0, version.1);
    let code = marshal::loads(payload, version).map_err(value_error)?;
    let source = match (source_hash, mtime, source_size) {
        (Some(hash), None, None) => PycSource::Hash {
            hash: hash.try_into().map_err(|_| PyValueError::new_err("source_hash must be 8 bytes"))?,
            check_source,
        },
        (None, Some(mtime), Some(size)) => PycSource::Timestamp { mtime, size },
        _ => return Err(PyValueError::new_err("give either source_hash, or both mtime and source_size")),
    };
    let pyc = marshal::Pyc::new(version, source, code).map_err(value_error)?;
    Ok(PyBytes::new(py, &marshal::write_pyc(&pyc).map_err(value_error)?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(read_pyc_parts, m)?)?;
    m.add_function(wrap_pyfunction!(build_pyc, m)?)?;
    m.add_function(wrap_pyfunction!(roundtrip_marshal, m)?)?;
    m.add_function(wrap_pyfunction!(pyc_roundtrip, m)?)?;
    m.add_function(wrap_pyfunction!(pyc_info, m)?)?;
    Ok(())
}
