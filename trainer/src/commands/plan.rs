//! `trainer plan`: InsCL's replay plan for a task sequence, printed as JSON.
//!
//! Input: an [`EmbeddingsFile`] (`{"tasks": [{"name", "instructions": [{"id", "text",
//! "count", "tags", "embedding"}]}]}`; see README). Output: a [`SequencePlan`].

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use inscl::artifact::{self, EmbeddingsFile};
use inscl::insinfo::TagNormalizer;
use inscl::ot::{CostKind, CostPrecision};
use inscl::plan::{PlanConfig, SequencePlan, plan_sequence};
use inscl::replay::{DEFAULT_ALPHA, Strategy};
use inscl::similarity::{SimilarityConfig, Solver, WeightScheme};

/// Arguments of `trainer plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Task sequence with instruction embeddings, counts and tags (JSON).
    #[arg(long, value_name = "FILE")]
    embeddings: PathBuf,
    /// Replay budget per stage step: stage i replays α × (i − 1) instances.
    #[arg(long, default_value_t = DEFAULT_ALPHA)]
    alpha: usize,
    /// Ground cost between instruction embeddings.
    #[arg(long, default_value_t = CostKind::Cosine)]
    cost: CostKind,
    /// Instruction weights: `real` (by instance count, InsCL's default) or `uniform`.
    #[arg(long, default_value_t = WeightScheme::Real)]
    weights: WeightScheme,
    /// Optimal-transport solver for the Wasserstein distances.
    #[arg(long, value_enum, default_value_t = SolverKind::Exact)]
    solver: SolverKind,
    /// Entropic regularisation ε of the Sinkhorn solver (in cost units).
    #[arg(long, default_value_t = 0.05)]
    epsilon: f64,
    /// Arithmetic of the exact solver's cosine cost matrices: `float64`, or `float32`
    /// products to find the optimal plan, whose cost is then summed in float64.
    #[arg(long, default_value_t = CostPrecision::Float64)]
    precision: CostPrecision,
    /// Replay strategy.
    #[arg(long, default_value_t = Strategy::InsCL)]
    strategy: Strategy,
    /// Seed of all sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Do not stem tags before counting them.
    #[arg(long)]
    no_stem: bool,
    /// Merge tags whose normalised Levenshtein similarity is at least this (0..=1).
    #[arg(long, value_name = "SIMILARITY")]
    merge_tags: Option<f64>,
}

/// `--solver` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum SolverKind {
    /// Exact optimal transport (network simplex).
    Exact,
    /// Debiased Sinkhorn divergence with regularisation `--epsilon`.
    Sinkhorn,
}

impl PlanArgs {
    fn config(&self) -> anyhow::Result<PlanConfig> {
        if let Some(s) = self.merge_tags {
            anyhow::ensure!(
                (0.0..=1.0).contains(&s),
                "--merge-tags must be in [0, 1], got {s}"
            );
        }
        let solver = match self.solver {
            SolverKind::Exact => Solver::Exact,
            SolverKind::Sinkhorn => {
                anyhow::ensure!(
                    self.epsilon.is_finite() && self.epsilon > 0.0,
                    "--epsilon must be a positive number, got {}",
                    self.epsilon
                );
                Solver::Sinkhorn {
                    epsilon: self.epsilon,
                }
            }
        };
        Ok(PlanConfig {
            alpha: self.alpha,
            strategy: self.strategy,
            seed: self.seed,
            similarity: SimilarityConfig {
                cost: self.cost,
                weights: self.weights,
                solver,
                precision: self.precision,
            },
            tags: TagNormalizer {
                stem: !self.no_stem,
                merge_threshold: self.merge_tags,
            },
        })
    }
}

/// Reads the embeddings, plans every stage and prints the plan to stdout.
pub fn run(args: &PlanArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let input: EmbeddingsFile = artifact::read(&args.embeddings)?;
    let plan: SequencePlan = plan_sequence(&input.tasks, &config)
        .with_context(|| format!("cannot plan {}", args.embeddings.display()))?;
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, &plan)?;
    writeln!(stdout)?;
    Ok(())
}
