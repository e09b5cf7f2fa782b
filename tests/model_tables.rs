//! Per-kind config tables: the MLP's keys in `[model.mlp]`, the layout of release 0.1 (its keys in
//! `[model]`) still read with a note, fingerprints taken over the old layout so that run
//! directories written before stay valid, and `--set` and sweeps reaching the same key under
//! either spelling.

use grokscope::config::Config;
use grokscope::sweep::spec::SweepSpec;

const NEW: &str =
    "[data]\np = 11\n[model]\ndropout = 0.1\n[model.mlp]\nwidth = 8\nbatchnorm = true\n";
const OLD: &str = "[data]\np = 11\n[model]\ndropout = 0.1\nwidth = 8\nbatchnorm = true\n";

#[test]
fn both_layouts_read_the_same_config_and_only_the_old_one_gets_a_note() {
    let (new, new_notes) = Config::from_toml_noted(NEW, &[]).unwrap();
    let (old, old_notes) = Config::from_toml_noted(OLD, &[]).unwrap();
    assert_eq!(new, old);
    assert_eq!(new.model.mlp.width, 8);
    assert!(new.model.mlp.batchnorm);
    assert_eq!(new.fingerprint(), old.fingerprint());
    assert!(new_notes.is_empty(), "{new_notes:?}");
    assert_eq!(old_notes.len(), 1, "{old_notes:?}");
    assert!(
        old_notes[0].contains("model.width, model.batchnorm are the MLP's"),
        "{old_notes:?}"
    );
    // The written layout is the new one, and reads back to the same config.
    let text = new.to_toml();
    assert!(text.contains("[model.mlp]\nwidth = 8\n"), "{text}");
    assert_eq!(Config::from_toml(&text, &[]).unwrap(), new);
}

#[test]
fn a_key_in_both_places_is_an_error() {
    let both = NEW.replace("dropout = 0.1\n", "dropout = 0.1\nwidth = 9\n");
    let e = Config::from_toml(&both, &[]).unwrap_err().to_string();
    assert!(
        e.contains("model.width and model.mlp.width are the same setting"),
        "{e}"
    );
    let e = Config::from_toml(&both, &["train.steps=5".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("are the same setting"), "{e}");
}

#[test]
fn a_set_of_either_spelling_sets_the_one_key() {
    for text in [NEW, OLD] {
        for key in ["model.width", "model.mlp.width"] {
            let (cfg, notes) = Config::from_toml_noted(text, &[format!("{key}=16")]).unwrap();
            assert_eq!(cfg.model.mlp.width, 16, "{key} on {text}");
            assert!(cfg.model.mlp.batchnorm);
            let noted = notes.iter().any(|n| n.contains("read as model.mlp.width"));
            assert_eq!(noted, key == "model.width", "{notes:?}");
        }
    }
    // An invalid value is blamed on the --set, in its own spelling.
    let sets = ["model.width=0".to_string()];
    let e = Config::from_toml(NEW, &sets)
        .and_then(Config::check)
        .unwrap_err();
    let m = grokscope::config::blamed_message(&e, &sets, "the config");
    assert!(
        m.starts_with("--set model.width=0: invalid `model.width`"),
        "{m}"
    );
    let sets = ["model.mlp.width=0".to_string()];
    let e = Config::from_toml(OLD, &sets)
        .and_then(Config::check)
        .unwrap_err();
    let m = grokscope::config::blamed_message(&e, &sets, "the config");
    assert!(
        m.starts_with("--set model.mlp.width=0: invalid `model.mlp.width`"),
        "{m}"
    );
}

#[test]
fn fingerprints_are_taken_over_the_layout_of_the_previous_release() {
    // config.toml of a run directory written by the previous release: its body is, to the
    // byte, the old layout this version computes for the fingerprints.
    for run in ["finished", "interrupted", "transformer"] {
        let path = format!(
            "{}/tests/fixtures/release-0.1/{run}/config.toml",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let body: String = text
            .lines()
            .skip_while(|l| l.starts_with('#') || l.is_empty())
            .map(|l| format!("{l}\n"))
            .collect();
        let cfg = Config::from_toml(&text, &[]).unwrap();
        assert_eq!(cfg.legacy_toml(), body, "{run}");
        assert_ne!(cfg.to_toml(), body, "{run}: the new layout differs");
    }
}

#[test]
fn sweep_axes_and_bases_take_either_spelling() {
    for (base, axis) in [
        ("model.width = 8", "model.batchnorm"),
        ("model.mlp.width = 8", "model.batchnorm"),
        ("model.width = 8", "model.mlp.batchnorm"),
        ("model.mlp.width = 8", "model.mlp.batchnorm"),
    ] {
        let text = format!(
            "name = \"s\"\n[base]\ndata.p = 11\n{base}\ntrain.steps = 5\n[axes]\n\"{axis}\" = [false, true]\n"
        );
        let spec = SweepSpec::parse(&text).unwrap();
        let runs = spec.expand().unwrap();
        let bn: Vec<bool> = runs.iter().map(|r| r.cfg.model.mlp.batchnorm).collect();
        assert_eq!(bn, [false, true], "{base} / {axis}");
        assert!(
            runs.iter().all(|r| r.cfg.model.mlp.width == 8),
            "{base} / {axis}"
        );
    }
}

#[test]
fn a_sweep_may_not_give_one_key_in_both_spellings() {
    for axes in [
        "\"model.width\" = [8, 16]\n\"model.mlp.width\" = [8, 16]\n",
        "\"model.width,model.mlp.width\" = [[8, 16], [16, 8]]\n",
    ] {
        let text = format!("name = \"s\"\n[base]\ndata.p = 11\ntrain.steps = 5\n[axes]\n{axes}");
        let e = SweepSpec::parse(&text).unwrap_err().to_string();
        assert!(e.contains("is swept twice"), "{e}");
    }
}

/// Every key of `table` with a changeable value (bool, integer, float), as dotted paths.
fn leaves(table: &toml::Table, at: &str, out: &mut Vec<(String, toml::Value)>) {
    for (k, v) in table {
        let key = if at.is_empty() {
            k.clone()
        } else {
            format!("{at}.{k}")
        };
        match v {
            toml::Value::Table(t) => leaves(t, &key, out),
            toml::Value::Boolean(b) => out.push((key, toml::Value::Boolean(!b))),
            toml::Value::Integer(i) => out.push((key, toml::Value::Integer(i + 1))),
            toml::Value::Float(x) => out.push((
                key,
                toml::Value::Float(if *x == 0.0 { 0.25 } else { x * 0.75 }),
            )),
            _ => {}
        }
    }
}

#[test]
fn every_setting_of_every_kind_changes_the_training_fingerprint() {
    // The fingerprints are taken over the old layout: a kind's table missing there would let
    // a changed setting pass as the same training.
    for kind in ["mlp", "transformer"] {
        let base = Config::from_toml(&format!("[model]\nkind = \"{kind}\""), &[]).unwrap();
        let fp = base.training_fingerprint();
        let table: toml::Table = base.to_toml().parse().unwrap();
        let mut keys = Vec::new();
        leaves(&table, "", &mut keys);
        let trained: Vec<_> = keys
            .into_iter()
            .filter(|(k, _)| {
                ["data.", "model.", "train."]
                    .iter()
                    .any(|s| k.starts_with(s))
            })
            .collect();
        assert!(trained.len() > 25, "{kind}: {} keys", trained.len());
        for (key, value) in trained {
            let mut t = table.clone();
            grokscope::config::set_path(&mut t, &key, value.clone()).unwrap();
            let changed = Config::from_table(&t).unwrap();
            assert_ne!(
                changed.training_fingerprint(),
                fp,
                "{kind}: {key} = {value}"
            );
        }
    }
}
