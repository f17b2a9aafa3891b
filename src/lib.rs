//! frontrun: an import-time CPython bytecode rewriter and a DPOR engine.
//!
//! Pipeline, one module per stage:
//! `tables` (per-version opcode data) → `decode` (bytes → instructions) → `rewrite`
//! (inject report calls; `methods` names what is reported) → `encode` (instructions → bytes, tables, stack size) →
//! `marshal` (code objects and pyc files) → `engine` (DPOR over the reported events).
//! `python` holds the PyO3 bindings that expose all of it as `frontrun._native`.

pub mod decode;
pub mod encode;
pub mod engine;
pub mod exctable;
pub mod instr;
pub mod linetable;
pub mod marshal;
pub mod methods;
pub mod rewrite;
pub mod stackdepth;
pub mod tables;

#[cfg(feature = "python")]
mod python;

// Only the extension: the pure-Rust core, its tests and benches keep the system allocator.
#[cfg(feature = "python")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
