//! Issue 2: experiment files — defaults, errors that name file/line/key, grid expansion.

mod common;

use pretext::config::{LoadedExperiment, NormKind};
use std::path::Path;

fn load(text: &str) -> Result<LoadedExperiment, String> {
    LoadedExperiment::from_str(text, Path::new("exp/test.toml")).map_err(|e| e.to_string())
}

#[test]
fn empty_file_gets_defaults_and_one_run() {
    let e = load("").unwrap();
    assert_eq!(e.base.name, "test");
    assert_eq!(e.runs.len(), 1);
    assert_eq!(e.runs[0].variant, "base");
    assert_eq!(e.base.objectives[0].name, "mlm");
    assert_eq!(e.base.model.norm, NormKind::PostLn);
}

#[test]
fn shipped_experiment_files_validate() {
    // Every file in experiments/ (keys, types, values, grids; the corpus files and a
    // `model.init` source are checked by `pretext validate` where ../shared and runs/ exist).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 9, "{files:?}");
    for p in files {
        let e = LoadedExperiment::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(!e.runs.is_empty());
    }
}

#[test]
fn ablation_axes_expand_into_named_grid() {
    let e = load(
        r#"
[ablation]
"model.norm" = ["post-ln", "pre-ln", "powernorm"]
training.seed = [1, 2]
"#,
    )
    .unwrap();
    assert_eq!(e.runs.len(), 6);
    let names: Vec<&str> = e.runs.iter().map(|r| r.variant.as_str()).collect();
    assert_eq!(names[0], "norm=post-ln,seed=1");
    assert_eq!(names[5], "norm=powernorm,seed=2");
    assert_eq!(e.runs[3].config.model.norm, NormKind::PreLn);
    assert_eq!(e.runs[3].config.training.seed, 2);
    assert!(e.runs.iter().all(|r| r.config.ablation.is_empty()));
}

#[test]
fn objective_lists_are_an_axis() {
    let e = load(
        r#"
[ablation]
objectives = [[{ name = "mlm" }], [{ name = "mlm" }, { name = "sop", weight = 0.5 }]]
"#,
    )
    .unwrap();
    assert_eq!(e.runs[1].variant, "objectives=mlm+sop*0.5");
    assert_eq!(e.runs[1].config.objectives[1].weight, 0.5);
}

fn err(text: &str) -> String {
    load(text).expect_err("must be rejected")
}

#[test]
fn each_bad_value_is_named_with_file_key_and_expectation() {
    let cases: &[(&str, &[&str])] = &[
        (
            "[model]\nhidden = 100\nheads = 3\n",
            &["exp/test.toml:2", "model.hidden", "multiple of model.heads"],
        ),
        (
            "[model]\nnorm = \"batchnorm\"\n",
            &["exp/test.toml:2", "model.norm", "post-ln", "powernorm"],
        ),
        (
            "[model]\nhiden = 10\n",
            &["exp/test.toml:2", "model.hiden", "unknown field"],
        ),
        (
            "[training]\nsteps = \"many\"\n",
            &["training.steps", "expected u64"],
        ),
        (
            "[[objectives]]\nname = \"mlm\"\nweight = -1.0\n",
            &["objectives.0.weight", ">= 0"],
        ),
        (
            "[[objectives]]\nname = \"xlnet\"\n",
            &[
                "objectives.0.name",
                "unknown objective `xlnet`",
                "mlm, nsp, sop, contrastive, electra",
            ],
        ),
        (
            "[[objectives]]\nname = \"mlm\"\noptions = { mask_prob = 1.5 }\n",
            &["objectives.0.options", "mask_prob"],
        ),
        (
            "[[objectives]]\nname = \"mlm\"\noptions = { maskprob = 0.2 }\n",
            &["objectives.0.options", "maskprob"],
        ),
        (
            "[[objectives]]\nname = \"nsp\"\n[[objectives]]\nname = \"sop\"\n",
            &["objectives", "choose one"],
        ),
        (
            "[[objectives]]\nname = \"contrastive\"\noptions = { temperature = 0 }\n",
            &["temperature"],
        ),
        (
            "[[objectives]]\nname = \"electra\"\noptions = { discriminator_weight = 0 }\n",
            &["objectives.0.options", "discriminator_weight", "50"],
        ),
        (
            "[[objectives]]\nname = \"electra\"\noptions = { mask_prop = 0.2 }\n",
            &["objectives.0.options", "mask_prop"],
        ),
        (
            "[[finetune]]\ntask = \"sts-embed\"\ndata = \"sts\"\nselect_fraction = 0.1\n",
            &["finetune.0.select_fraction", "sts-embed trains nothing"],
        ),
        (
            "[[finetune]]\ntask = \"sts-embed\"\ndata = \"sts\"\nlr = [1e-4, 3e-4]\n",
            &["finetune.0.lr", "sts-embed trains nothing"],
        ),
        ("[model]\ndropout = 1.0\n", &["model.dropout", "[0, 1)"]),
        (
            "[training]\nseq_len = 256\n",
            &["model.max_positions", "training.seq_len"],
        ),
        ("[optimizer]\nlr = 0\n", &["optimizer.lr"]),
        (
            "[ablation]\n\"model.norm\" = \"pre-ln\"\n",
            &["ablation.model.norm", "list of values"],
        ),
        (
            "[ablation]\n\"model.heads\" = [3]\n",
            &["ablation", "model.hidden"],
        ),
        (
            "[ablation]\n\"model.hiden\" = [3]\n",
            &["ablation.model.hiden", "hiden"],
        ),
        ("[model\n", &["exp/test.toml:1"]),
    ];
    for (text, needles) in cases {
        let msg = err(text);
        for n in *needles {
            assert!(msg.contains(n), "for {text:?}: `{n}` not in:\n{msg}");
        }
    }
}

#[test]
fn several_problems_are_reported_together() {
    let msg = err("[model]\nhidden = 100\nheads = 3\n[optimizer]\nlr = -1\n");
    assert!(msg.contains("2 problems"), "{msg}");
}

#[test]
fn missing_file_is_named() {
    let e = LoadedExperiment::load(Path::new("no/such/experiment.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no/such/experiment.toml"), "{e}");
}

#[test]
fn table_values_merge_into_their_section() {
    let e = load(
        r#"
[model]
layers = 3
[model.powernorm]
alpha_fwd = 0.5
[ablation]
model = [{ norm = "pre-ln" }, { norm = "powernorm", powernorm = { warmup = 0 } }]
"#,
    )
    .unwrap();
    assert_eq!(e.runs.len(), 2);
    let pn = &e.runs[1].config.model;
    assert_eq!(
        (
            pn.layers,
            pn.norm,
            pn.powernorm.warmup,
            pn.powernorm.alpha_fwd
        ),
        (3, NormKind::Powernorm, 0, 0.5)
    );
    assert_eq!(e.runs[0].config.model.layers, 3);
    assert_eq!(e.runs[1].variant, "model=norm-powernorm+powernorm-warmup-0");
}

/// Issue 19: sizes the machine cannot hold are refused by key before anything is allocated.
#[test]
fn sizes_that_cannot_fit_are_refused_by_key() {
    use pretext::config::memory;
    let e = err("[tokenizer]\nvocab_size = 1000000000\n");
    assert!(
        e.contains("tokenizer.vocab_size") && e.contains("at most"),
        "{e}"
    );

    let exp = |extra: &str| {
        load(&format!("[model]\nlayers = 4\nhidden = 256\nheads = 4\nffn = 1024\nmax_positions = 128\n[training]\nseq_len = 128\n{extra}")).unwrap()
    };
    let gib = (1u64 << 30) as f64;
    let small = exp("batch_size = 32\n");
    let est = memory::estimate(&small.base);
    // The reference shape measured 653 MiB peak RSS (pretext bench): the estimate is generous
    // but of that order.
    assert!(est.total > 0.5 * gib && est.total < 4.0 * gib, "{est:?}");
    assert_eq!(memory::refuse(&small.base, 24.0 * gib), None);

    let (key, why) = memory::refuse(&exp("batch_size = 1000000\n").base, 24.0 * gib).unwrap();
    assert_eq!(key, "training.batch_size", "{why}");
    assert!(why.contains("GiB") && why.contains("grad_accum"), "{why}");
    let (key, _) = memory::refuse(
        &exp("batch_size = 32\n[tokenizer]\nvocab_size = 3000000\n").base,
        24.0 * gib,
    )
    .unwrap();
    assert_eq!(key, "tokenizer.vocab_size");
    // A position table of 10^8 rows is the key's fault, not the width's.
    let (key, _) = memory::refuse(
        &load("[model]\nmax_positions = 100000000\n").unwrap().base,
        24.0 * gib,
    )
    .unwrap();
    assert_eq!(key, "model.max_positions");
    // The key named is the one whose default would make the run fit (it named the batch
    // for a depth of 2^63 − 1).
    for (text, want) in [
        ("[model]\nlayers = 9223372036854775807\n", "model.layers"),
        ("[model]\nffn = 9223372036854775807\n", "model.ffn"),
    ] {
        let (key, _) = memory::refuse(&load(text).unwrap().base, 24.0 * gib).unwrap();
        assert_eq!(key, want);
    }
    for (text, key, says) in [
        (
            "[training]\ngrad_accum = 9223372036854775807\n",
            "training.grad_accum",
            "at most",
        ),
        (
            "[training]\nthreads = 100000\n",
            "training.threads",
            "at most",
        ),
        // These two panicked on allocation (a token-type table, the held-out batches).
        (
            "[model]\ntype_vocab = 9223372036854775807\n",
            "model.type_vocab",
            "to 1024",
        ),
        (
            "[training]\neval_batches = 9223372036854775807\n",
            "training.eval_batches",
            "at most",
        ),
        (
            "[optimizer]\nlr = 1e308\n",
            "optimizer.weight_decay",
            "lr × weight_decay < 1",
        ),
    ] {
        let e = err(text);
        assert!(e.contains(key) && e.contains(says), "{e}");
    }

    // `pretext run` refuses it by key with exit 1, not an out-of-memory abort.
    let dir = common::scratch("fit");
    std::fs::write(dir.join("huge.toml"), "[training]\nbatch_size = 1000000\n").unwrap();
    let o = common::pretext()
        .arg("run")
        .arg(dir.join("huge.toml"))
        .arg("--runs-dir")
        .arg(dir.join("runs"))
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("huge.toml") && msg.contains("training.batch_size"),
        "{msg}"
    );
    assert!(
        !dir.join("runs").exists(),
        "nothing is written before the refusal"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 17, item 3: size presets fill [model], keys override them one by one, a grid can
/// sweep them, and BERT-base / BERT-large with BERT's 30,522-token vocabulary count the
/// parameters HF's `BertForPreTraining` has (110,106,428 and 336,226,108: `BertModel`'s
/// 109,482,240 / 335,141,888, plus the MLM transform, the decoder bias and the NSP head).
#[test]
fn size_presets_fill_the_model_and_count_like_hf() {
    use pretext::config::memory;
    let exp = |preset: &str, extra: &str| {
        load(&format!(
            "[tokenizer]\nvocab_size = 30522\n[model]\npreset = \"{preset}\"\n{extra}[training]\nseq_len = 128\n"
        ))
        .unwrap()
    };
    let base = exp("bert-base", "");
    let m = &base.base.model;
    assert_eq!(
        (m.layers, m.hidden, m.heads, m.ffn, m.max_positions),
        (12, 768, 12, 3072, 512)
    );
    assert_eq!(memory::parameters(&base.base), 110_106_428.0);
    assert_eq!(
        memory::parameters(&exp("bert-large", "").base),
        336_226_108.0
    );
    let tiny = exp("bert-tiny", "layers = 3\n");
    assert_eq!((tiny.base.model.layers, tiny.base.model.hidden), (3, 128));
    let grid = load("[model]\npreset = \"bert-mini\"\nlayers = 2\n[ablation]\n\"model.preset\" = [\"bert-tiny\", \"bert-small\"]\n").unwrap();
    let sizes: Vec<(usize, usize)> = grid
        .runs
        .iter()
        .map(|r| (r.config.model.layers, r.config.model.hidden))
        .collect();
    assert_eq!(sizes, [(2, 128), (2, 512)]);
    let e = err("[model]\npreset = \"bert-huge\"\n");
    assert!(
        e.contains("test.toml:2") && e.contains("model.preset") && e.contains("bert-large"),
        "{e}"
    );
}

/// Issue 19: two variants of a grid never share a run directory (the second would overwrite
/// the first): repeated values, or values a folder name cannot tell apart, are refused.
#[test]
fn variants_that_would_share_a_directory_are_refused() {
    let e = err("[ablation]\n\"training.seed\" = [1, 2, 1]\n");
    assert!(
        e.contains("ablation.") && e.contains("share the run directory `seed=1`"),
        "{e}"
    );
    let e = err("[ablation]\n\"data.corpus\" = [[\"a/b.txt\"], [\"a_b.txt\"]]\n");
    assert!(
        e.contains("ablation.data.corpus") && e.contains("a_b.txt"),
        "{e}"
    );
}

/// Issue 20: named recipes vary keys of several sections together, as one axis.
#[test]
fn recipes_set_keys_of_several_sections_as_one_axis() {
    let e = load(
        r#"
[model]
dropout = 0.1
[[objectives]]
name = "mlm"
[training]
batch_size = 64
[ablation]
"training.seed" = [1, 2]
[ablation.recipe.bert]
[ablation.recipe.fast]
"training.batch_size" = 16
"model.dropout" = 0.0
"objectives.0.options.mask_prob" = 0.4
"#,
    )
    .unwrap();
    let names: Vec<&str> = e.runs.iter().map(|r| r.variant.as_str()).collect();
    assert_eq!(
        names,
        [
            "seed=1,recipe=bert",
            "seed=1,recipe=fast",
            "seed=2,recipe=bert",
            "seed=2,recipe=fast"
        ]
    );
    let (bert, fast) = (&e.runs[2].config, &e.runs[3].config);
    assert_eq!((bert.training.batch_size, bert.model.dropout), (64, 0.1));
    assert!(bert.objectives[0].options.is_empty());
    assert_eq!((fast.training.batch_size, fast.model.dropout), (16, 0.0));
    assert_eq!(fast.training.seed, 2);
    assert_eq!(
        fast.objectives[0].options["mask_prob"].as_float(),
        Some(0.4)
    );

    let e = err("[ablation.recipe.fast]\n\"training.batch_size\" = \"big\"\n");
    assert!(
        e.contains("ablation") && e.contains("recipe=fast") && e.contains("batch_size"),
        "{e}"
    );
    let e = err("[ablation.recipe.fast]\n\"model.layers.deep\" = 1\n");
    assert!(
        e.contains("recipe=fast") && e.contains("model.layers"),
        "{e}"
    );
    let e = err("[ablation]\nrecipe = [1, 2]\n");
    assert!(
        e.contains("ablation.recipe") && e.contains("named recipes"),
        "{e}"
    );
    let e = err("[ablation.recipe]\nfast = 3\n");
    assert!(
        e.contains("ablation.recipe.fast") && e.contains("table of settings"),
        "{e}"
    );
}

/// An experiment path that is no experiment file is refused by name, before anything is read
/// whole: a device (`/dev/zero` would never end; `/dev/null` would pass for an empty file of
/// defaults), a directory, a file far too large for one, bytes that are not UTF-8.
#[test]
fn paths_that_are_no_experiment_file_are_refused_by_name() {
    let refused = |path: &Path| match LoadedExperiment::load(path) {
        Ok(_) => panic!("{} was loaded as an experiment", path.display()),
        Err(e) => e.to_string(),
    };
    for dev in ["/dev/zero", "/dev/null"] {
        let e = refused(Path::new(dev));
        assert!(e.contains(dev) && e.contains("not a regular file"), "{e}");
    }
    let dir = common::scratch("experiment-paths");
    let e = refused(&dir);
    assert!(e.contains("is a directory"), "{e}");
    let huge = dir.join("huge.toml");
    // Sparse: no disk is spent on it.
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(17 << 20)
        .unwrap();
    let e = refused(&huge);
    assert!(
        e.contains("huge.toml") && e.contains("more than 16 MiB"),
        "{e}"
    );
    let binary = dir.join("binary.toml");
    std::fs::write(&binary, b"name = \"x\"\n\xff\xfe").unwrap();
    let e = refused(&binary);
    assert!(e.contains("not UTF-8") && e.contains("byte 11"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
