//! The model seam (`model::kind::NetworkKind`): each kind's parameter layout, given as data,
//! is what its engine trains and saves.

use grokscope::config::Config;
use grokscope::model::kind::n_parameters;
use grokscope::setup::Prepare;
use grokscope::train::Engine;

/// Elements of every tensor of a weights file but the BatchNorm running statistics (state,
/// not parameters), and the file's tensor names.
fn saved(bytes: &[u8]) -> (usize, Vec<String>) {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    let n = names
        .iter()
        .filter(|n| !n.contains("running"))
        .map(|n| st.tensor(n).unwrap().shape().iter().product::<usize>())
        .sum();
    (n, names)
}

#[test]
fn the_layout_of_each_kind_is_what_its_engine_saves() {
    for sets in [
        vec!["model.mlp.width=6"],
        vec!["model.mlp.width=6", "model.mlp.batchnorm=true"],
        vec![
            "model.kind=\"transformer\"",
            "model.transformer.d_model=8",
            "model.transformer.heads=2",
        ],
        vec![
            "model.kind=\"transformer\"",
            "model.transformer.d_model=8",
            "model.transformer.heads=2",
            "model.transformer.layers=2",
            "model.transformer.layernorm=true",
            "model.transformer.mlp_bias=true",
        ],
    ] {
        let mut all: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        all.extend(["data.p=7".into(), "train.weight_decay=[0, 1]".into()]);
        let cfg = Config::from_toml("", &all).unwrap().check().unwrap();
        let kind = cfg.architecture().kind();
        let layout = kind.parameters();
        let s = cfg.setup().unwrap();
        let (n, names) = saved(&s.network.save_all(0).unwrap());
        assert_eq!(
            n,
            2 * n_parameters(&layout),
            "{sets:?}: two models' parameters"
        );
        assert!(
            layout.iter().all(|t| t.shape.iter().all(|&d| d > 0)),
            "{sets:?}"
        );
        let mut mine: Vec<String> = layout.iter().map(|t| t.name.clone()).collect();
        mine.sort();
        let params: Vec<String> = names
            .into_iter()
            .filter(|n| !n.contains("running"))
            .collect();
        assert_eq!(
            mine, params,
            "{sets:?}: the file's tensors are the layout's"
        );
    }
}

#[test]
fn kinds_name_their_norms_and_neurons() {
    let mlp = Config::from_toml("", &["data.p=7".into()])
        .unwrap()
        .check()
        .unwrap();
    let t = Config::from_toml(
        "",
        &["data.p=7".into(), "model.kind=\"transformer\"".into()],
    )
    .unwrap()
    .check()
    .unwrap();
    assert_eq!(mlp.architecture().norm_names(), ["‖U‖", "‖V‖", "‖W‖"]);
    assert_eq!(t.architecture().neuron_noun(), "MLP neurons");
    assert_ne!(mlp.architecture().shape_key(), t.architecture().shape_key());
}

#[test]
fn a_weights_file_that_lacks_a_tensor_changes_no_model() {
    for kind in ["mlp", "transformer"] {
        let sets: Vec<String> = vec![
            "data.p=7".into(),
            format!("model.kind=\"{kind}\""),
            "model.mlp.width=6".into(),
            "model.transformer.d_model=8".into(),
            "model.transformer.heads=2".into(),
            "train.weight_decay=[0, 1]".into(),
        ];
        let cfg = Config::from_toml("", &sets).unwrap().check().unwrap();
        let mut a = cfg.setup().unwrap().network;
        let bytes = a.save_all(0).unwrap();
        // The file without its last parameter tensor (in layout order).
        let layout = cfg.architecture().kind().parameters();
        let dropped = &layout.last().unwrap().name;
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let kept: Vec<(String, safetensors::tensor::TensorView)> = st
            .tensors()
            .into_iter()
            .filter(|(n, _)| n != dropped)
            .collect();
        let mut broken = safetensors::serialize(kept, meta.metadata().clone()).unwrap();
        grokscope::digest::reseal(&mut broken).unwrap();
        // A fleet with other weights (another init seed) keeps them when the load fails.
        let other = Config::from_toml(
            "",
            &[sets.clone(), vec!["model.init_seed=5".into()]].concat(),
        )
        .unwrap()
        .check()
        .unwrap();
        let mut b = other.setup().unwrap().network;
        let before = b.save_all(0).unwrap();
        let e = b.load(&broken).unwrap_err().to_string();
        assert!(e.contains(dropped.as_str()), "{kind}: {e}");
        assert_eq!(b.save_all(0).unwrap(), before, "{kind}: unchanged");
        // The whole file loads, and gives back the weights it holds.
        b.load(&bytes).unwrap();
        assert_eq!(b.save_all(0).unwrap(), bytes, "{kind}: round trip");
        a.load(&bytes).unwrap();
    }
}

#[test]
fn a_weights_file_with_tensors_the_model_lacks_is_refused() {
    let small = |bn: &str| {
        let sets = vec![
            "data.p=7".into(),
            "model.mlp.width=6".into(),
            format!("model.mlp.batchnorm={bn}"),
        ];
        let cfg = Config::from_toml("", &sets).unwrap().check().unwrap();
        cfg.setup().unwrap().network
    };
    let with_bn = small("true").save_all(0).unwrap();
    let mut plain = small("false");
    let before = plain.save_all(0).unwrap();
    let e = plain.load(&with_bn).unwrap_err().to_string();
    assert!(
        e.contains("bn.bias, bn.running_mean, bn.running_var, bn.weight"),
        "{e}"
    );
    assert_eq!(plain.save_all(0).unwrap(), before);
}
