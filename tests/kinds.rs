//! The model seam (`model::kind::NetworkKind`): each kind's parameter layout, given as data,
//! is what its engine trains and saves.

use grokscope::config::Config;
use grokscope::model::kind::n_parameters;
use grokscope::setup::Prepare;

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
        if sets[0].contains("transformer") {
            let mut mine: Vec<String> = layout.iter().map(|t| t.name.clone()).collect();
            mine.sort();
            assert_eq!(mine, names, "{sets:?}: the file's tensors are the layout's");
        }
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
