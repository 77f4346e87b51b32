//! Reading runs back and comparing them: `runner ls`, `compare`, `diff`, `plot`. Everything
//! here reads only the plain files of run directories.

pub mod compare;
pub mod diff;
pub mod html;
pub mod ls;
pub mod metrics;
pub mod plot;
pub mod runs;
pub mod stats;
pub mod table;
pub mod tensorboard;
