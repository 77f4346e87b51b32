//! The network an experiment declares, as a shape: what the build script generates a dfdx type
//! for and what `runner` looks that type up by. [`Network::of`] checks the limits and that every
//! block gets maps it can reduce; [`Network::key`] names the network; [`Network::rust_type`] is
//! the type the build script writes.

#[cfg(test)]
use crate::config::PerBlock;
use crate::config::{ModelConfig, Padding};
use std::fmt;

/// Input images: 28x28, one channel; 784 values flat. Outputs: 10 classes.
const IMAGE_SIDE: usize = 28;
const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
const CLASSES: usize = 10;

/// What can be declared.
pub const MAX_HIDDEN_LAYERS: usize = 8;
pub const MAX_WIDTH: usize = 16384;
pub const MAX_BLOCKS: usize = 4;
pub const MAX_FILTERS: usize = 1024;
pub const MAX_KERNEL: usize = 11;

/// The one kernel rule: odd (so that `same` padding is symmetric), 1 ..= [`MAX_KERNEL`].
pub fn valid_kernel(k: usize) -> bool {
    k % 2 == 1 && k <= MAX_KERNEL
}

/// One convolution block: convolution (stride 1, zero padding `pad` on each side), activation, and
/// when `pool`, a 2x2 max-pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Block {
    pub filters: usize,
    pub kernel: usize,
    pub pad: usize,
    pub pool: bool,
}

impl Block {
    /// The side of the maps this block makes from `side`x`side` maps (0: it cannot).
    fn output_side(&self, side: usize) -> usize {
        let conv = (side + 2 * self.pad + 1).saturating_sub(self.kernel);
        if self.pool {
            conv / 2
        } else {
            conv
        }
    }
}

/// The keys whose values decide a network's type (the rest of `[model]`, such as dropout,
/// activation and init, are chosen when the network runs).
pub const SHAPE_KEYS: &[&str] = &[
    "model.kind",
    "model.hidden",
    "model.conv",
    "model.kernel",
    "model.padding",
    "model.pool",
];

/// A network's shape: everything that decides its dfdx type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Network {
    /// 784 inputs, hidden layers of these widths, 10 logits.
    Mlp { hidden: Vec<usize> },
    /// Conv blocks on the 28x28 image, then hidden dense layers and 10 logits.
    Cnn {
        blocks: Vec<Block>,
        hidden: Vec<usize>,
    },
}

fn check_widths(hidden: &[usize]) -> Result<(), String> {
    if hidden.len() > MAX_HIDDEN_LAYERS {
        return Err(format!(
            "key 'model.hidden': {} hidden layers; at most {MAX_HIDDEN_LAYERS} can be declared",
            hidden.len()
        ));
    }
    match hidden.iter().find(|&&w| !(1..=MAX_WIDTH).contains(&w)) {
        Some(w) => Err(format!(
            "key 'model.hidden': width {w} is out of range; each width is 1..={MAX_WIDTH}"
        )),
        None => Ok(()),
    }
}

impl Network {
    /// The network a `[model]` table declares, or why it cannot be built: a limit exceeded, or
    /// a block whose input maps are too small for its kernel and pool.
    pub fn of(model: &ModelConfig) -> Result<Network, String> {
        match model {
            ModelConfig::Mlp { hidden, .. } => {
                check_widths(hidden)?;
                Ok(Network::Mlp {
                    hidden: hidden.clone(),
                })
            }
            ModelConfig::Cnn {
                conv,
                kernel,
                padding,
                pool,
                hidden,
                ..
            } => {
                if conv.is_empty() || conv.len() > MAX_BLOCKS {
                    return Err(format!(
                        "key 'model.conv': {} blocks; declare 1 to {MAX_BLOCKS}",
                        conv.len()
                    ));
                }
                if let Some(f) = conv.iter().find(|&&f| !(1..=MAX_FILTERS).contains(&f)) {
                    return Err(format!(
                        "key 'model.conv': {f} filters is out of range; each block has \
                         1..={MAX_FILTERS}"
                    ));
                }
                check_widths(hidden)?;
                let mut blocks = Vec::new();
                let mut side = IMAGE_SIDE;
                for (i, &filters) in conv.iter().enumerate() {
                    let missing =
                        |key: &str| format!("key 'model.{key}': no value for block {}", i + 1);
                    let k = kernel.get(i).ok_or_else(|| missing("kernel"))?;
                    if !valid_kernel(k) {
                        return Err(format!(
                            "key 'model.kernel': {k} (block {}); a kernel is odd, 1..={MAX_KERNEL}",
                            i + 1
                        ));
                    }
                    let padding = padding.get(i).ok_or_else(|| missing("padding"))?;
                    let block = Block {
                        filters,
                        kernel: k,
                        pad: match padding {
                            Padding::Same => k / 2,
                            Padding::Valid => 0,
                        },
                        pool: pool.get(i).ok_or_else(|| missing("pool"))?,
                    };
                    let next = block.output_side(side);
                    if next < 1 {
                        return Err(format!(
                            "key 'model.conv': block {} gets {side}x{side} maps, which its \
                             {k}x{k} convolution ({padding}){pool} cannot reduce to at least \
                             1x1; use fewer blocks, a smaller kernel, \"same\" padding or no pool",
                            i + 1,
                            padding = if block.pad == 0 { "valid" } else { "same" },
                            pool = if block.pool { " and 2x2 pool" } else { "" },
                        ));
                    }
                    blocks.push(block);
                    side = next;
                }
                Ok(Network::Cnn {
                    blocks,
                    hidden: hidden.clone(),
                })
            }
        }
    }

    /// Side length of the maps after every block (CNNs), and the flattened feature count.
    fn features(blocks: &[Block]) -> usize {
        let side = blocks
            .iter()
            .fold(IMAGE_SIDE, |side, b| b.output_side(side));
        side * side * blocks.last().map_or(1, |b| b.filters)
    }

    /// A short stable name: `mlp[300,100]`, `cnn[32k5p2,64k5p2][1024]`.
    pub fn key(&self) -> String {
        let list = |v: &[usize]| {
            v.iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Network::Mlp { hidden } => format!("mlp[{}]", list(hidden)),
            Network::Cnn { blocks, hidden } => {
                let blocks: Vec<String> = blocks
                    .iter()
                    .map(|b| {
                        let pool = if b.pool { "" } else { "n" };
                        format!("{}k{}p{}{pool}", b.filters, b.kernel, b.pad)
                    })
                    .collect();
                format!("cnn[{}][{}]", blocks.join(","), list(hidden))
            }
        }
    }

    /// The Rust type of the network, in the names `runner`'s `models` module has in scope
    /// (`Dense`, `FirstDense`, `FirstBlock`, `Block`, `ConvRelu`, `Hidden`, `ToImage`,
    /// `Flatten`). The first layer of each kind is the one that computes no input gradient. Tuples of more than six
    /// modules (dfdx's limit) nest their tail; up to five, the layout (and so the parameter
    /// names) is what the fixed registry had.
    pub fn rust_type(&self) -> String {
        match self {
            Network::Mlp { hidden } if hidden.is_empty() => {
                format!("FirstDense<{IMAGE_PIXELS}, {CLASSES}>")
            }
            Network::Mlp { hidden } => {
                let mut layers = dense_stack(IMAGE_PIXELS, hidden);
                layers[0] = format!("First{}", layers[0]);
                tuple(layers)
            }
            Network::Cnn { blocks, hidden } => {
                let mut convs = Vec::new();
                let mut channels = 1;
                for (i, b) in blocks.iter().enumerate() {
                    let kind = match (b.pool, i) {
                        (false, _) => "ConvRelu",
                        (true, 0) => "FirstBlock",
                        (true, _) => "Block",
                    };
                    convs.push(format!(
                        "{kind}<{channels}, {}, {}, {}>",
                        b.filters, b.kernel, b.pad
                    ));
                    channels = b.filters;
                }
                let features = Network::features(blocks);
                tuple(vec![
                    "ToImage".into(),
                    one_or_more(convs),
                    format!("Flatten<{features}>"),
                    one_or_more(dense_stack(features, hidden)),
                ])
            }
        }
    }
}

/// Hidden dense layers (each followed by its activation and dropout) from `inputs` through
/// `hidden` to the logits.
fn dense_stack(inputs: usize, hidden: &[usize]) -> Vec<String> {
    let mut modules = Vec::new();
    let mut from = inputs;
    for &w in hidden {
        modules.push(format!("Dense<{from}, {w}>"));
        modules.push("Hidden".into());
        from = w;
    }
    modules.push(format!("Dense<{from}, {CLASSES}>"));
    modules
}

/// A tuple of the modules; past six, the first five and a nested tuple of the rest.
fn tuple(mut modules: Vec<String>) -> String {
    if modules.len() > 6 {
        let rest = modules.split_off(5);
        modules.push(tuple(rest));
    }
    format!("({})", modules.join(", "))
}

/// Like [`tuple`], and a one-element tuple stays a tuple (`(Dense<..>,)`), as the CNN head was.
fn one_or_more(modules: Vec<String>) -> String {
    if modules.len() == 1 {
        format!("({},)", modules[0])
    } else {
        tuple(modules)
    }
}

impl fmt::Display for Network {
    /// As an experiment file's `[model]` would declare it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Network::Mlp { hidden } => write!(f, "kind = \"mlp\", hidden = {hidden:?}"),
            Network::Cnn { blocks, hidden } => {
                let conv: Vec<usize> = blocks.iter().map(|b| b.filters).collect();
                let per_block = |values: Vec<String>| {
                    if values.iter().all(|v| *v == values[0]) {
                        values[0].clone()
                    } else {
                        format!("[{}]", values.join(", "))
                    }
                };
                let kernel = per_block(blocks.iter().map(|b| b.kernel.to_string()).collect());
                let padding = per_block(
                    blocks
                        .iter()
                        .map(|b| {
                            let same = b.pad > 0 || b.kernel == 1;
                            format!("\"{}\"", if same { "same" } else { "valid" })
                        })
                        .collect(),
                );
                write!(
                    f,
                    "kind = \"cnn\", conv = {conv:?}, kernel = {kernel}, padding = {padding}, "
                )?;
                if blocks.iter().any(|b| !b.pool) {
                    let pool = per_block(blocks.iter().map(|b| b.pool.to_string()).collect());
                    write!(f, "pool = {pool}, ")?;
                }
                write!(f, "hidden = {hidden:?}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Init;

    fn cnn(conv: &[usize], kernel: usize, padding: Padding, hidden: &[usize]) -> ModelConfig {
        ModelConfig::Cnn {
            conv: conv.to_vec(),
            kernel: PerBlock::All(kernel),
            padding: PerBlock::All(padding),
            pool: PerBlock::All(true),
            hidden: hidden.to_vec(),
            init: Init::Glorot,
            activation: Default::default(),
            dropout: 0.0,
        }
    }

    /// Kernel, padding and pool per block; a block without a pool keeps its maps' size.
    #[test]
    fn per_block_settings_and_blocks_without_a_pool() {
        let model = ModelConfig::Cnn {
            conv: vec![8, 16, 32],
            kernel: PerBlock::Each(vec![5, 3, 3]),
            padding: PerBlock::Each(vec![Padding::Valid, Padding::Same, Padding::Same]),
            pool: PerBlock::Each(vec![true, false, true]),
            hidden: vec![],
            init: Init::Glorot,
            activation: Default::default(),
            dropout: 0.0,
        };
        let net = Network::of(&model).unwrap();
        // 28 -> conv 5 valid 24 -> pool 12 -> conv 3 same 12 -> conv 3 same 12 -> pool 6.
        assert_eq!(
            net.rust_type(),
            "(ToImage, (FirstBlock<1, 8, 5, 0>, ConvRelu<8, 16, 3, 1>, Block<16, 32, 3, 1>), \
             Flatten<1152>, (Dense<1152, 10>,))"
        );
        assert_eq!(
            net.to_string(),
            "kind = \"cnn\", conv = [8, 16, 32], kernel = [5, 3, 3], padding = [\"valid\", \
             \"same\", \"same\"], pool = [true, false, true], hidden = []"
        );
        assert_eq!(net.key(), "cnn[8k5p0,16k3p1n,32k3p1][]");
    }

    fn mlp(hidden: &[usize]) -> ModelConfig {
        ModelConfig::Mlp {
            hidden: hidden.to_vec(),
            init: Init::Glorot,
            activation: Default::default(),
            dropout: 0.0,
        }
    }

    /// The types the fixed registry had, for the networks run directories already exist for.
    #[test]
    fn existing_networks_keep_their_types() {
        let cases = [
            (mlp(&[]), "FirstDense<784, 10>"),
            (mlp(&[32]), "(FirstDense<784, 32>, Hidden, Dense<32, 10>)"),
            (
                mlp(&[512, 256]),
                "(FirstDense<784, 512>, Hidden, Dense<512, 256>, Hidden, Dense<256, 10>)",
            ),
            (
                cnn(&[32, 64], 5, Padding::Same, &[1024]),
                "(ToImage, (FirstBlock<1, 32, 5, 2>, Block<32, 64, 5, 2>), Flatten<3136>, \
                 (Dense<3136, 1024>, Hidden, Dense<1024, 10>))",
            ),
            (
                cnn(&[8], 3, Padding::Valid, &[]),
                "(ToImage, (FirstBlock<1, 8, 3, 0>,), Flatten<1352>, (Dense<1352, 10>,))",
            ),
        ];
        for (model, want) in cases {
            assert_eq!(Network::of(&model).unwrap().rust_type(), want);
        }
    }

    /// LeNet-5: 28 -> conv 5 valid 24 -> pool 12 -> conv 8 -> pool 4: 4 * 4 * 16 features.
    #[test]
    fn lenet_shapes_and_deep_stacks_nest() {
        let lenet = Network::of(&cnn(&[6, 16], 5, Padding::Valid, &[120, 84])).unwrap();
        assert_eq!(
            lenet.rust_type(),
            "(ToImage, (FirstBlock<1, 6, 5, 0>, Block<6, 16, 5, 0>), Flatten<256>, \
             (Dense<256, 120>, Hidden, Dense<120, 84>, Hidden, Dense<84, 10>))"
        );
        assert_eq!(lenet.key(), "cnn[6k5p0,16k5p0][120,84]");
        let deep = Network::of(&mlp(&[8, 7, 6])).unwrap();
        assert_eq!(
            deep.rust_type(),
            "(FirstDense<784, 8>, Hidden, Dense<8, 7>, Hidden, Dense<7, 6>, (Hidden, Dense<6, 10>))"
        );
    }

    #[test]
    fn limits_and_shapes_that_do_not_reduce_are_errors_naming_the_block() {
        let err = Network::of(&cnn(&[8, 8, 8, 8], 5, Padding::Valid, &[])).unwrap_err();
        assert!(err.contains("block 3") && err.contains("4x4"), "{err}");
        assert!(Network::of(&cnn(&[8, 8, 8, 8], 3, Padding::Same, &[])).is_ok());
        assert!(Network::of(&cnn(&[8, 8, 8, 8, 8], 3, Padding::Same, &[]))
            .unwrap_err()
            .contains("1 to 4"));
        assert!(Network::of(&cnn(&[2000], 3, Padding::Same, &[]))
            .unwrap_err()
            .contains("filters"));
        assert!(Network::of(&cnn(&[8], 13, Padding::Same, &[]))
            .unwrap_err()
            .contains("kernel"));
        assert!(Network::of(&mlp(&[1; 9]))
            .unwrap_err()
            .contains("at most 8"));
        assert!(Network::of(&mlp(&[16385])).unwrap_err().contains("16384"));
        assert!(Network::of(&mlp(&[16384, 1])).is_ok());
    }
}
