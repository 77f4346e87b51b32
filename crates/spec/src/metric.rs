//! The headline metrics of a run, as sweep files, tables and JSON name them.

/// One headline metric of a run: its name (the JSON and sweep-file vocabulary), its column
/// label in tables, which way is better and how it is shown (the runner reads it from a run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    TestAccuracy,
    BestTestAccuracy,
    BestTestStep,
    TestLoss,
    /// Of runs with a validation split (`data.validation`).
    ValAccuracy,
    ValLoss,
    TrainLoss,
    MsPerStep,
    WallTime,
}

impl Metric {
    /// Every metric, in the order `runner compare` shows them.
    pub const ALL: [Metric; 9] = [
        Metric::TestAccuracy,
        Metric::BestTestAccuracy,
        Metric::BestTestStep,
        Metric::TestLoss,
        Metric::ValAccuracy,
        Metric::ValLoss,
        Metric::TrainLoss,
        Metric::MsPerStep,
        Metric::WallTime,
    ];

    /// The metrics a sweep can rank its trials by.
    pub const RANKABLE: [Metric; 6] = [
        Metric::TestAccuracy,
        Metric::TestLoss,
        Metric::BestTestAccuracy,
        Metric::ValAccuracy,
        Metric::ValLoss,
        Metric::MsPerStep,
    ];

    /// Whether only some runs have it (tables leave its column out when no run does).
    pub fn optional(self) -> bool {
        matches!(self, Metric::ValAccuracy | Metric::ValLoss)
    }

    /// The name in `--json` objects and sweep files.
    pub fn name(self) -> &'static str {
        match self {
            Metric::TestAccuracy => "test_accuracy",
            Metric::BestTestAccuracy => "best_test_accuracy",
            Metric::BestTestStep => "best_test_step",
            Metric::TestLoss => "test_loss",
            Metric::ValAccuracy => "val_accuracy",
            Metric::ValLoss => "val_loss",
            Metric::TrainLoss => "train_loss",
            Metric::MsPerStep => "ms_per_step",
            Metric::WallTime => "wall_time_s",
        }
    }

    /// The column label in tables (`runner compare`, `runner ls`).
    pub fn column(self) -> &'static str {
        match self {
            Metric::TestAccuracy => "test_acc",
            Metric::BestTestAccuracy => "best_acc",
            Metric::BestTestStep => "best_step",
            Metric::TestLoss => "test_loss",
            Metric::ValAccuracy => "val_acc",
            Metric::ValLoss => "val_loss",
            Metric::TrainLoss => "train_loss",
            Metric::MsPerStep => "ms/step",
            Metric::WallTime => "wall_s",
        }
    }

    /// The metric a name or a column label stands for.
    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == s || m.column() == s)
    }

    /// Whether a larger value is better (accuracy; the step of the best evaluation counts as
    /// larger-is-better, as later means trained longer).
    pub fn higher_is_better(self) -> bool {
        matches!(
            self,
            Metric::TestAccuracy
                | Metric::BestTestAccuracy
                | Metric::BestTestStep
                | Metric::ValAccuracy
        )
    }

    /// How a table shows it: scale, decimals and unit suffix.
    pub fn format(self) -> (f64, usize, &'static str) {
        match self {
            Metric::TestAccuracy | Metric::BestTestAccuracy | Metric::ValAccuracy => {
                (100.0, 2, "%")
            }
            Metric::BestTestStep => (1.0, 0, ""),
            Metric::TestLoss | Metric::TrainLoss | Metric::ValLoss => (1.0, 4, ""),
            Metric::MsPerStep => (1.0, 2, ""),
            Metric::WallTime => (1.0, 1, ""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Metric;

    #[test]
    fn names_and_columns_parse_back() {
        for m in Metric::ALL {
            assert_eq!(Metric::parse(m.name()), Some(m));
            assert_eq!(Metric::parse(m.column()), Some(m));
        }
        assert_eq!(Metric::parse("speed"), None);
    }
}
