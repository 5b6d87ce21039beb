"""Simulated subjects: cc2017 file layout, determinism, signal without leaks, reliability, HRF lag."""

import json

import h5py
import numpy as np
import pytest
import scipy.io

from cineneuron.sources.synth import generate
from cineneuron.sources.synth.hrf import double_gamma

VOXELS = 437  # unequal to every other dimension
SEED = 3


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """400 clips of 2 s in 20 runs of 20 volumes; 16 training runs, 4 test runs."""
    root = tmp_path_factory.mktemp("brainworld")
    summary = generate(root, size="small", clips=400, voxels=VOXELS, seed=SEED, frame_size=32)
    ann = json.loads((root / "annotations.json").read_text())
    mat = scipy.io.loadmat(root / "subject1" / "fmri" / "training_fmri.mat")["fmri"][0, 0]
    with h5py.File(root / "subject1" / "fmri" / "testing_fmri.mat", "r") as f:
        tests = {name: f["fmritest"][name][()] for name in f["fmritest"]}  # (10, n_vol, V)
    truth = dict(np.load(root / "truth" / "subject1.npz"))
    return {"root": root, "summary": summary, "ann": ann, "data1": mat["data1"], "data2": mat["data2"],
            "tests": tests, "truth": truth}


def _colcorr(a, b):
    """Pearson r of matching columns of (T, V) arrays."""
    a, b = a - a.mean(0), b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0) + 1e-12)


def test_cc2017_layout(world):
    s, ann = world["summary"], world["ann"]
    n_vol = s["volumes_per_run"]
    assert n_vol == s["clips_per_segment"]  # TR 2 s, clips 2 s: one volume per clip
    assert world["data1"].shape == world["data2"].shape == (VOXELS, n_vol, s["train_segments"])
    assert world["data1"].dtype == np.float32
    assert not np.allclose(world["data1"], world["data2"])  # independent noise per repeat
    assert sorted(world["tests"]) == [f"test{i + 1}" for i in range(s["test_segments"])]
    for runs in world["tests"].values():
        assert runs.shape == (10, n_vol, VOXELS) and runs.dtype == np.float32
    path = world["root"] / "subject1" / "fmri" / "testing_fmri.mat"
    head = path.read_bytes()[:128]
    assert head.startswith(b"MATLAB 7.3 MAT-file") and head[-4:] == b"\x00\x02IM"
    with h5py.File(path, "r") as f:
        assert f["fmritest"].attrs["MATLAB_class"] == b"struct"
        assert f["fmritest/test1"].attrs["MATLAB_class"] == b"single"
    assert ann["world"]["train_segments"] == [f"seg{i + 1}" for i in range(s["train_segments"])]
    truth = world["truth"]
    for key in ("responsive", "rf_x", "rf_y", "rf_size", "category_tuning", "motion_dir_deg", "clean_train"):
        assert len(truth[key]) == VOXELS, key
    assert truth["clean_test"].shape == (VOXELS, n_vol, s["test_segments"])


def _tiny(path, seed, subjects=1):
    generate(path, size="small", clips=20, voxels=53, seed=seed, subjects=subjects, frame_size=24)
    fmri = path / "subject1" / "fmri"
    captions = [c["caption"] for c in json.loads((path / "annotations.json").read_text())["clips"]]
    return (fmri / "training_fmri.mat").read_bytes(), (fmri / "testing_fmri.mat").read_bytes(), captions


def test_same_seed_same_bytes(tmp_path):
    a = _tiny(tmp_path / "a", 7)
    b = _tiny(tmp_path / "b", 7)
    c = _tiny(tmp_path / "c", 8)
    assert a[0] == b[0] and a[1] == b[1] and a[2] == b[2]
    assert a[0] != c[0] and a[1] != c[1] and a[2] != c[2]


def test_subjects_differ_and_are_stable(tmp_path):
    generate(tmp_path / "two", size="small", clips=20, voxels=53, seed=7, subjects=2, frame_size=24)
    generate(tmp_path / "one", size="small", clips=20, voxels=53, seed=7, subjects=1, frame_size=24)
    t1, t2 = (np.load(tmp_path / "two" / "truth" / f"subject{k}.npz") for k in (1, 2))
    assert not np.allclose(t1["rf_x"], t2["rf_x"])
    assert not np.array_equal(t1["category_tuning"], t2["category_tuning"])
    same = (tmp_path / "one" / "subject1" / "fmri" / "training_fmri.mat").read_bytes()
    assert same == (tmp_path / "two" / "subject1" / "fmri" / "training_fmri.mat").read_bytes()


def test_tr_08_runs(tmp_path):
    s = generate(tmp_path, size="small", clips=20, voxels=31, tr=0.8, frame_size=24)
    mat = scipy.io.loadmat(tmp_path / "subject1" / "fmri" / "training_fmri.mat")["fmri"][0, 0]
    assert s["volumes_per_run"] == round(s["clips_per_segment"] * 2 / 0.8)
    assert mat["data1"].shape == (31, s["volumes_per_run"], s["train_segments"])


def test_hrf_shape():
    h = double_gamma(0.1, peak_s=5.0)
    assert abs(np.argmax(h) * 0.1 - 5.0) < 0.2
    assert h.min() < 0 and np.argmin(h) * 0.1 > 10  # undershoot after the peak


def _category(clip) -> int:
    """Ground-truth category of the clip's first object: 0 person, 1 animal, 2 vehicle, 3 other."""
    from cineneuron.sources.synth import kind_superclass

    sc = kind_superclass[clip["factors"]["kinds"][0]]
    return {"man": 0, "woman": 0, "animal": 1, "vehicle": 2}.get(sc, 3)


def _samples(world, split):
    """One sample per clip: the volumes 2 and 3 TRs after its onset (the HRF peak), averaged over
    repeats; clips whose response falls past the end of the run are dropped."""
    segs = world["ann"]["world"]["train_segments"]
    runs = ({s: ((world["data1"][:, :, i] + world["data2"][:, :, i]) / 2).T for i, s in enumerate(segs)}
            if split == "train" else {s: r.mean(0) for s, r in world["tests"].items()})  # (n_vol, V)
    x, y = [], []
    for c in world["ann"]["clips"]:
        run = runs.get(c["segment"]) if c["split"] == split else None
        if run is not None and c["index"] + 3 < len(run):
            x.append(np.concatenate([run[c["index"] + 2], run[c["index"] + 3]]))
            y.append(_category(c))
    return np.array(x), np.array(y)


def test_category_is_decodable_and_nothing_leaks(world):
    """Fit on training runs, score on test runs: one-vs-rest ROC AUC per category (chance 0.5,
    stable with few positives), and the same classifier fitted on shuffled labels."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xtr, ytr = _samples(world, "train")
    xte, yte = _samples(world, "test")
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=3000, class_weight="balanced"))
    rng = np.random.default_rng(0)
    real, shuffled = [], []
    for k in range(3):  # person, animal, vehicle
        real.append(roc_auc_score(yte == k, clf.fit(xtr, ytr == k).decision_function(xte)))
        shuffled += [roc_auc_score(yte == k, clf.fit(xtr, rng.permutation(ytr == k)).decision_function(xte))
                     for _ in range(8)]
    acc = balanced_accuracy_score(yte, clf.fit(xtr, ytr).predict(xte))
    print(f"\ncategory AUC person/animal/vehicle {np.round(real, 3)}, shuffled labels {np.mean(shuffled):.3f} "
          f"+- {np.std(shuffled):.3f}; 4-way balanced accuracy {acc:.3f} (chance 0.25); "
          f"n_train {len(ytr)}, n_test {len(yte)}, test counts {np.bincount(yte, minlength=4)}")
    assert np.mean(real) > 0.75 and min(real) > 0.65
    assert abs(np.mean(shuffled) - 0.5) < 0.1


def test_reliability_has_a_realistic_spread(world):
    runs = np.concatenate(list(world["tests"].values()), axis=1)  # (10, n_vol_total, V)
    r_half = _colcorr(runs[0::2].mean(0), runs[1::2].mean(0))  # split-half, 5 vs 5 repeats
    r_single = _colcorr(runs[0], runs[1])
    q = [0.05, 0.25, 0.5, 0.75, 0.95, 0.99]
    print("\nquantiles", q)
    print("split-half reliability  ", np.round(np.quantile(r_half, q), 3))
    print("single-repeat reliability", np.round(np.quantile(r_single, q), 3))
    responsive = world["truth"]["responsive"]
    assert (r_half < 0.2).mean() > 0.3  # many unreliable voxels ...
    assert np.quantile(r_half, 0.95) > 0.7  # ... and some highly reliable ones
    assert abs(r_half[~responsive].mean()) < 0.1  # silent voxels are pure noise
    assert r_half[responsive].mean() > r_half[~responsive].mean() + 0.3


def test_response_lags_the_stimulus_by_the_hrf(world):
    """Correlate test fMRI with each voxel's stimulus drive (features through its tuning) at lags."""
    neural = world["truth"]["neural_test"]  # (V, n_vol, n_test_segments), per TR, no HRF
    resp = world["truth"]["responsive"]
    by_lag = []
    for lag in range(6):
        rs = []
        for i, runs in enumerate(world["tests"].values()):
            bold, drive = runs.mean(0), neural[:, :, i].T  # (n_vol, V)
            n = len(bold) - lag
            rs.append(_colcorr(bold[lag:], drive[:n])[resp])
        by_lag.append(float(np.mean(rs)))
    print("\nmean r by lag (TRs of 2 s):", np.round(by_lag, 3))
    peak = int(np.argmax(by_lag))
    assert peak in (2, 3)  # 4-6 s: the HRF peak
    assert by_lag[peak] > by_lag[0] + 0.2


def test_ventral_object_voxels_give_every_kind_its_own_pattern(tmp_path):
    """The ventral attribute channel: a held-out kind (bus) still evokes its own object-voxel
    pattern, different from its nearest seen sibling's (car), and the truth files record it."""
    import json

    from cineneuron.sources.synth import generate
    from cineneuron.sources.synth.features import clip_features
    from cineneuron.sources.synth.render import render_clip
    from cineneuron.sources.synth.scenes import ClipScene, ObjectSpec
    from cineneuron.sources.synth.subjects import TYPES, _drive, make_subject
    from cineneuron.sources.synth.ventral import attribute_names, draw_attributes

    generate(tmp_path, size="small", clips=40, voxels=300, subjects=1, seed=3, holdout_kinds=["bus"])
    truth = json.loads((tmp_path / "truth" / "attributes.json").read_text())
    assert truth["names"] == attribute_names() and truth["held_out_of_training"] == ["bus"]
    vecs = np.array(list(truth["kinds"].values()))
    assert len(truth["kinds"]) == 17 and len({tuple(v) for v in vecs.round(6)}) == 17  # every kind its own
    sub = np.load(tmp_path / "truth" / "subject1.npz")
    obj = sub["vtype"] == TYPES.index("object")
    assert obj.sum() > 5 and np.abs(sub["attribute_tuning"][obj]).sum(1).min() > 0
    assert np.abs(sub["attribute_tuning"][~obj]).max() == 0

    attrs = draw_attributes(3)
    subject = make_subject(np.random.default_rng([3, 2, 1]), 400, 1.0, 2.0)
    idx = np.flatnonzero(subject.vtype == TYPES.index("object"))

    def pattern(kind):
        clip = render_clip(ClipScene("field", 1, [ObjectSpec(kind, "red", "large", "still", 0.5, 0.6, 0.3, 0.0, False)]),
                           48, 8, 2.0, attrs)
        f, _ = clip_features(clip, None)
        drive = _drive(subject, idx, f.reshape(f.shape[0], f.shape[1], -1), np.zeros((f.shape[0], 2), np.float32))
        return np.maximum(drive, 0).mean(0)

    bus, car, dog = pattern("bus"), pattern("car"), pattern("dog")
    assert np.linalg.norm(bus - car) > 0.05 * np.linalg.norm(car)
    # overlapping codes: bus is nearer car than dog in the voxels' own space
    assert np.corrcoef(bus, car)[0, 1] > np.corrcoef(bus, dog)[0, 1]
