//! One module per subcommand.

pub mod compare;
pub mod plan;
pub mod run;
