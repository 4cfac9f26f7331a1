//! One module per subcommand.

pub mod compare;
pub mod data;
pub mod generate;
pub mod plan;
pub mod run;
pub mod study;
