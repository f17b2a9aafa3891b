//! `frontrun._native`: the PyO3 bindings. Each submodule registers the functions of one
//! pipeline stage; the pure-Rust stages know nothing of Python.

use pyo3::prelude::*;

mod bytecode_py;
mod marshal_py;
mod pipeline;
pub mod report_py;
mod rewrite_py;
mod runtime;

// gil_used = false: the module is safe on free-threaded builds (3.13t/3.14t); shared state
// lives behind mutexes, never behind the GIL.
#[pymodule(gil_used = false)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("READING_BUILTINS", pyo3::types::PyTuple::new(m.py(), crate::methods::READING_BUILTINS)?)?;
    m.add("DEFAULT_RESOURCE_METHODS", pyo3::types::PyTuple::new(m.py(), crate::methods::DEFAULT_RESOURCE_METHODS)?)?;
    // (For the test that keeps the rewriter's path names in step with `_dpor`'s tables.)
    m.add("PATH_FUNCTIONS", pyo3::types::PyTuple::new(m.py(), crate::methods::PATH_FUNCTIONS)?)?;
    m.add("PATH_METHODS", pyo3::types::PyTuple::new(m.py(), crate::methods::PATH_METHODS)?)?;
    bytecode_py::register(m)?;
    marshal_py::register(m)?;
    rewrite_py::register(m)?;
    report_py::register(m)?;
    runtime::register(m)?;
    Ok(())
}
