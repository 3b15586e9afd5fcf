import json

import numpy as np
import pytest

from napari_samphase.core.errors import InputError
from napari_samphase.core.evaluation.panoptic import (
    PQCounts,
    match_phases,
    panoptic_quality,
    panoptic_quality_arrays,
    panoptic_quality_of_phases,
    pq_counts,
)
from napari_samphase.core.image.synthetic import make_micrograph
from napari_samphase.core.outputs.panoptic import (
    Panoptic,
    check_panoptic,
    decode_ids,
    default_stuff,
    encode_ids,
    load_panoptic,
    panoptic_from_phases,
    panoptic_stems,
    phase_and_instance,
    read_panoptic,
    read_phase_instance,
    write_panoptic,
)


def scene(shape=(10, 10), particles=()):
    """Phase map (0 = matrix) and instance labels from (phase, rows, cols) boxes."""
    phase = np.zeros(shape, np.uint8)
    inst = np.zeros(shape, np.int32)
    for i, (p, rows, cols) in enumerate(particles, 1):
        phase[rows, cols] = p
        inst[rows, cols] = i
    return phase, inst


def pan(phase, inst, **kw):
    return panoptic_from_phases(phase, inst, stuff=(0,), **kw)


A = (1, slice(0, 2), slice(0, 2))  # 4 px of phase 1
B = (1, slice(6, 8), slice(6, 8))  # 4 px of phase 1
C = (2, slice(0, 3), slice(6, 9))  # 9 px of phase 2


# ---------------------------------------------------------------- hand-computed cases


def test_perfect_prediction_scores_one_whatever_the_segment_ids():
    truth = pan(*scene(particles=[A, B, C]))
    phase, inst = scene(particles=[C, B, A])  # same objects, other mask ids
    pred = pan(phase, inst * 7)
    assert not np.array_equal(pred.segments, truth.segments)
    m = panoptic_quality(pred, truth)
    assert m["pq"] == m["sq"] == m["rq"] == 1.0
    assert m["pq_th"] == m["pq_st"] == 1.0
    assert (m["tp"], m["fp"], m["fn"]) == (4, 0, 0)  # 3 particles + the matrix
    assert (m["n"], m["n_th"], m["n_st"]) == (3, 2, 1)


def test_one_missed_particle_hand_computed():
    names = ("matrix", "round", "square", "absent")  # phase 3 is in neither map
    truth = pan(*scene(particles=[A, B, C]), names=names)
    pred = pan(*scene(particles=[A, C]), names=names)  # B painted as matrix
    m = panoptic_quality(pred, truth)
    cat = m["per_category"]
    assert cat[3]["tp"] + cat[3]["fp"] + cat[3]["fn"] == 0 and np.isnan(cat[3]["pq"])
    assert m["n"] == 3  # ... and not in the averages
    # phase 1: A matched (IoU 1), B missed: TP 1, FN 1 -> RQ = 1 / (1 + 0.5) = 2/3
    assert (cat[1]["tp"], cat[1]["fp"], cat[1]["fn"]) == (1, 0, 1)
    assert cat[1]["rq"] == pytest.approx(2 / 3) and cat[1]["sq"] == 1.0
    assert cat[1]["pq"] == pytest.approx(2 / 3)
    # phase 2: C perfect
    assert cat[2]["pq"] == 1.0
    # matrix: true 100 - 17 = 83 px, predicted 83 + 4 (B) = 87 px, IoU 83/87
    assert cat[0]["tp"] == 1 and cat[0]["pq"] == pytest.approx(83 / 87)
    assert m["pq"] == pytest.approx((2 / 3 + 1 + 83 / 87) / 3)
    assert m["rq"] == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert m["pq_th"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["pq_st"] == pytest.approx(83 / 87)


def test_split_object_is_one_false_negative_and_two_false_positives():
    big = (1, slice(2, 6), slice(2, 6))  # 16 px
    truth = pan(*scene(particles=[big]))
    # two halves of 8 px: IoU 8/16 = 0.5 each, not above 0.5 -> no match
    pred = pan(*scene(particles=[(1, slice(2, 6), slice(2, 4)), (1, slice(2, 6), slice(4, 6))]))
    c = panoptic_quality(pred, truth)["per_category"][1]
    assert (c["tp"], c["fp"], c["fn"]) == (0, 2, 1)
    assert c["pq"] == 0.0 and c["rq"] == 0.0
    # 9 + 7 px: the larger piece has IoU 9/16 > 0.5 and matches, the other is an FP
    inst = np.zeros((10, 10), np.int32)
    inst[2:6, 2:6] = 2
    inst[2:6, 2:4] = 1
    inst[2, 4] = 1
    assert np.bincount(inst.ravel()).tolist() == [84, 9, 7]
    pred = pan((inst > 0).astype(np.uint8), inst)
    c = panoptic_quality(pred, truth)["per_category"][1]
    assert (c["tp"], c["fp"], c["fn"]) == (1, 1, 0)
    assert c["sq"] == pytest.approx(9 / 16)
    assert c["pq"] == pytest.approx((9 / 16) / (1 + 0.5))


def test_void_is_left_out_of_iou_and_mostly_void_predictions_are_no_false_positive():
    # truth: a particle (16 px), the matrix, and a void band (phase 9, unlabelled)
    phase, inst = scene(particles=[(1, slice(2, 6), slice(2, 6))])
    phase[:, 8:] = 9
    truth = panoptic_from_phases(phase, inst, stuff=(0,), void=(9,))
    assert (truth.segments[:, 8:] == 0).all() and 9 not in {c["id"] for c in truth.categories}
    p_phase, p_inst = scene(
        particles=[
            (1, slice(2, 6), slice(2, 7)),  # the particle + 4 matrix px: IoU 16/20
            (1, slice(0, 4), slice(7, 10)),  # 12 px, 8 over void: ignored
            (1, slice(7, 10), slice(6, 9)),  # 9 px, 3 over void: a false positive
        ]
    )
    pred = pan(p_phase, p_inst)
    c = panoptic_quality(pred, truth)["per_category"][1]
    assert (c["tp"], c["fp"], c["fn"]) == (1, 1, 0)
    assert c["sq"] == pytest.approx(16 / 20)
    # the same particle reaching over void instead: void is no error
    p_phase, p_inst = scene(
        particles=[(1, slice(2, 6), slice(2, 6)), (1, slice(0, 4), slice(8, 9))]
    )
    p_inst[p_inst == 2] = 1  # one mask: the particle + 4 void px
    pred = pan(p_phase, p_inst)
    c = panoptic_quality(pred, truth)["per_category"][1]
    assert (c["tp"], c["fp"], c["fn"]) == (1, 0, 0) and c["sq"] == pytest.approx(1.0)


def test_crowd_regions_are_neither_matched_missed_nor_false_positives_of_their_category():
    truth = pan(*scene(particles=[(1, slice(2, 6), slice(2, 6))]))
    truth.info[0]["iscrowd"] = 1  # the 16 px particle is a crowd region
    pred = pan(
        *scene(
            particles=[
                (1, slice(2, 5), slice(2, 6)),  # 12 px inside the crowd: IoU would be 0.75
                (2, slice(5, 6), slice(2, 6)),  # over the crowd, but another category
            ]
        )
    )
    cat = panoptic_quality(pred, truth)["per_category"]
    assert (cat[1]["tp"], cat[1]["fp"], cat[1]["fn"]) == (0, 0, 0)
    assert (cat[2]["tp"], cat[2]["fp"], cat[2]["fn"]) == (0, 1, 0)
    assert cat[0]["tp"] == 1 and cat[0]["pq"] == 1.0


def test_stuff_is_one_segment_even_where_it_is_split_apart():
    phase = np.zeros((6, 9), np.uint8)
    phase[:, 3:6] = 1  # a band of phase 1 cuts the matrix in two
    truth = panoptic_from_phases(phase, None, stuff=(0,))
    stuff = [s for s in truth.info if not s["isthing"]]
    assert len(stuff) == 1 and stuff[0]["area"] == 36 and stuff[0]["bbox"] == [0, 0, 9, 6]
    pred_phase = phase.copy()
    pred_phase[0, 3] = 0  # one band pixel predicted as matrix
    m = panoptic_quality(panoptic_from_phases(pred_phase, None, stuff=(0,)), truth)
    assert m["per_category"][0]["tp"] == 1 and m["per_category"][0]["fp"] == 0
    assert m["pq_st"] == pytest.approx(36 / 37)
    assert m["pq_th"] == pytest.approx(17 / 18)


def test_counts_add_up_over_images():
    truth = pan(*scene(particles=[A, B, C]))
    miss = pan(*scene(particles=[A, C]))
    total = sum([pq_counts(truth, truth), pq_counts(miss, truth)])
    s = total.summary()
    c = s["per_category"][1]
    assert (c["tp"], c["fp"], c["fn"]) == (3, 0, 1)
    assert c["pq"] == pytest.approx(3 / (3 + 0.5))  # not the mean of 1 and 2/3
    assert s["per_category"][0]["iou"] == pytest.approx(1 + 83 / 87)


# ------------------------------------------------- an independent re-derivation


def reference_pq(pred: Panoptic, truth: Panoptic):
    """PQ by the definition, pair by pair, with boolean masks (no shared code)."""
    cat_p = {s["id"]: s["category_id"] for s in pred.info}
    cat_t = {s["id"]: s["category_id"] for s in truth.info}
    thing = {c["id"]: c["isthing"] for c in pred.categories}
    thing.update({c["id"]: c["isthing"] for c in truth.categories})
    void = truth.segments == 0
    tp, fp, fn, iou_sum = {}, {}, {}, {}
    matched_p, matched_t = set(), set()
    for g, cg in cat_t.items():
        gm = truth.segments == g
        for q, cq in cat_p.items():
            if cq != cg:
                continue
            pm = pred.segments == q
            inter = int((gm & pm).sum())
            union = int(gm.sum() + pm.sum() - inter - (pm & void).sum())
            if inter / union > 0.5:
                tp[cg] = tp.get(cg, 0) + 1
                iou_sum[cg] = iou_sum.get(cg, 0.0) + inter / union
                matched_p.add(q)
                matched_t.add(g)
    for g, cg in cat_t.items():
        if g not in matched_t:
            fn[cg] = fn.get(cg, 0) + 1
    for q, cq in cat_p.items():
        pm = pred.segments == q
        if q not in matched_p and (pm & void).sum() / pm.sum() <= 0.5:
            fp[cq] = fp.get(cq, 0) + 1
    per = {}
    for c in tp.keys() | fp.keys() | fn.keys():
        t, f_p, f_n = tp.get(c, 0), fp.get(c, 0), fn.get(c, 0)
        s = iou_sum.get(c, 0.0) / t if t else 0.0
        r = t / (t + f_p / 2 + f_n / 2)
        per[c] = (s * r, s, r, t, f_p, f_n)
    things = [c for c in per if thing[c]]
    stuff = [c for c in per if not thing[c]]

    def mean(cs, k):
        return float(np.mean([per[c][k] for c in cs])) if cs else float("nan")

    out = {f"{n}q": mean(list(per), k) for k, n in enumerate("psr")}
    out.update({f"{n}q_th": mean(things, k) for k, n in enumerate("psr")})
    out.update({f"{n}q_st": mean(stuff, k) for k, n in enumerate("psr")})
    return out, per


def perturbed(seed):
    """A truth (with a void band) and a prediction from it: moved, grown, shrunk,
    missed, re-phased, split and spurious particles."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    mic = make_micrograph((64, 64), n_particles=14, n_phases=3, radius=(3.0, 9.0), seed=seed)
    t_phase = mic.phases.copy()
    r0 = int(rng.integers(0, 56))
    t_phase[r0 : r0 + 6, :] = 9  # unlabelled band
    truth = panoptic_from_phases(
        t_phase, mic.instances, stuff=(0,), void=(9,), names=mic.phase_names
    )
    phase, inst = mic.phases.astype(np.int64), mic.instances.astype(np.int64)
    out_p, out_i = np.zeros_like(phase), np.zeros_like(inst)
    nxt = int(inst.max()) + 1
    for i in range(1, int(inst.max()) + 1):
        m = inst == i
        p = int(phase[m][0])
        act = rng.integers(0, 7)
        if act == 1:
            m = np.roll(m, tuple(rng.integers(-3, 4, 2)), (0, 1))
        elif act == 2:
            m = ndi.binary_dilation(m, iterations=int(rng.integers(1, 3)))
        elif act == 3:
            m = ndi.binary_erosion(m, iterations=int(rng.integers(1, 3)))
        elif act == 4:
            continue  # missed
        elif act == 5:
            p = int(rng.integers(1, 4))
        elif act == 6:  # split along a random column
            cols = np.nonzero(m.any(0))[0]
            cut = int(rng.integers(cols.min(), cols.max() + 1))
            half = m.copy()
            half[:, cut:] = False
            out_i[half], out_p[half] = nxt, p
            nxt += 1
            m = m & ~half
        out_i[m], out_p[m] = i, p
    for _ in range(int(rng.integers(1, 5))):  # spurious particles
        y, x = rng.integers(0, 60, 2)
        h, w = rng.integers(2, 7, 2)
        out_i[y : y + h, x : x + w] = nxt
        out_p[y : y + h, x : x + w] = rng.integers(1, 4)
        nxt += 1
    pred = panoptic_from_phases(out_p, out_i, stuff=(0,), names=mic.phase_names)
    return pred, truth


SEEDS = range(6)


def test_pq_agrees_with_a_pair_by_pair_reference_on_random_maps():
    seen = {"tp": 0, "fp": 0, "fn": 0, "ignored": 0}
    for seed in SEEDS:
        pred, truth = perturbed(seed)
        m = panoptic_quality(pred, truth)
        ref, per = reference_pq(pred, truth)
        for k, v in ref.items():
            assert m[k] == pytest.approx(v, abs=1e-9, nan_ok=True), (seed, k)
        counted = {c for c, r in m["per_category"].items() if r["tp"] + r["fp"] + r["fn"]}
        assert counted == set(per)
        for c, (pq, sq, rq, tp, fp, fn) in per.items():
            r = m["per_category"][c]
            assert (r["tp"], r["fp"], r["fn"]) == (tp, fp, fn)
            assert (r["pq"], r["sq"], r["rq"]) == pytest.approx((pq, sq, rq), abs=1e-9)
        for k in ("tp", "fp", "fn"):
            seen[k] += m[k]
        void = truth.segments == 0
        seen["ignored"] += sum((void[pred.segments == s["id"]].mean() > 0.5) for s in pred.info)
    # the maps exercise every branch: matches, misses, false and ignored predictions
    assert min(seen.values()) > 0, seen


def test_pq_agrees_with_hotcoco_panopticapi_port(tmp_path):
    """hotcoco re-implements panopticapi's pq_compute and is checked against it;
    reading our files also checks that they are COCO panoptic."""
    hotcoco = pytest.importorskip("hotcoco.panoptic")
    for seed in SEEDS[:3]:
        pred, truth = perturbed(seed)
        for name, p in (("gt", truth), ("pred", pred)):
            (tmp_path / name).mkdir(exist_ok=True)
            write_panoptic(
                p, tmp_path / name / f"im{seed}.png", tmp_path / f"{name}{seed}.json", image_id=1
            )
        res = hotcoco.pq_compute(
            tmp_path / f"gt{seed}.json",
            tmp_path / f"pred{seed}.json",
            gt_folder=tmp_path / "gt",
            pred_folder=tmp_path / "pred",
        )
        m = panoptic_quality(pred, truth)
        for group, suffix in (("All", ""), ("Things", "_th"), ("Stuff", "_st")):
            for k in ("pq", "sq", "rq"):
                assert m[k + suffix] == pytest.approx(res[group][k], abs=1e-9), (seed, group, k)
        for c, r in res["per_class"].items():
            ours = m["per_category"][int(c)]
            assert (ours["tp"], ours["fp"], ours["fn"]) == (r["tp"], r["fp"], r["fn"])
            if r["tp"] + r["fp"] + r["fn"]:
                assert (ours["pq"], ours["sq"], ours["rq"]) == pytest.approx(
                    (r["pq"], r["sq"], r["rq"]), abs=1e-9
                )


# ------------------------------------------------- building panoptic maps


def test_panoptic_from_micrograph_truth():
    mic = make_micrograph((96, 96), n_particles=12, n_phases=3, radius=(4.0, 12.0), seed=3)
    p = panoptic_from_phases(mic.phases, mic.instances, names=mic.phase_names)
    check_panoptic(p)
    assert [c["name"] for c in p.categories] == list(mic.phase_names)
    assert [c["isthing"] for c in p.categories] == [False, True, True, True]
    things = [s for s in p.info if s["isthing"]]
    n_true = len(np.unique(mic.instances)) - 1
    assert len(things) == n_true and [s["id"] for s in things] == list(range(1, n_true + 1))
    for s in things:  # each thing segment is exactly one true particle, of its phase
        seg = p.segments == s["id"]
        ids = np.unique(mic.instances[seg])
        assert len(ids) == 1 and ids[0] > 0
        assert np.array_equal(seg, mic.instances == ids[0])
        assert s["category_id"] == mic.instance_phase[ids[0]]
        rows, cols = np.nonzero(seg)
        assert s["bbox"] == [cols.min(), rows.min(), np.ptp(cols) + 1, np.ptp(rows) + 1]
    (stuff,) = [s for s in p.info if not s["isthing"]]
    assert stuff["category_id"] == 0
    assert np.array_equal(p.segments == stuff["id"], mic.instances == 0)
    phase, inst = phase_and_instance(p)
    assert np.array_equal(phase, mic.phases)
    # the instances again, one id for one particle both ways
    pairs = np.unique(np.stack([inst.ravel(), mic.instances.ravel().astype(np.int64)]), axis=1)
    assert pairs.shape[1] == n_true + 1


def test_mixed_masks_keep_every_pixel_phase():
    phase = np.zeros((8, 12), np.uint8)
    labels = np.zeros((8, 12), np.int32)
    labels[1:5, 1:5] = 3  # mask 3: 12 px of phase 1, 2 of phase 2, 2 of the matrix
    phase[1:5, 1:5] = 1
    phase[1, 1:3] = 2
    phase[4, 3:5] = 0
    labels[1:4, 7:11] = 5  # mask 5: mostly matrix (a matrix mask), 3 px of phase 2
    phase[2, 8:11] = 2
    phase[6, 9:11] = 1  # phase 1 in no mask
    phase[6, 1] = phase[7, 2] = 2  # touching by a corner only: two pieces (4-connected)
    p = panoptic_from_phases(phase, labels, stuff=(0,))
    check_panoptic(p)
    back, inst = phase_and_instance(p)
    assert np.array_equal(back, phase)  # the phase of every pixel is kept
    by_id = {s["id"]: s for s in p.info}
    # mask 3 -> segment 1: its phase-1 pixels only
    assert by_id[1]["category_id"] == 1 and by_id[1]["area"] == 12
    assert np.array_equal(p.segments == 1, (labels == 3) & (phase == 1))
    # the rest of phase 1 and 2: one segment per connected piece, in no mask segment
    pieces = sorted((s["category_id"], s["area"]) for s in p.info if s["isthing"] and s["id"] > 1)
    assert pieces == [(1, 2), (2, 1), (2, 1), (2, 2), (2, 3)]
    assert np.array_equal(inst > 0, phase > 0)
    # without masks the particles are the connected components
    cc = panoptic_from_phases(phase, None, stuff=(0,))
    assert sorted(s["area"] for s in cc.info if s["isthing"]) == [1, 1, 2, 2, 3, 12]


def test_default_stuff_and_explicit_stuff():
    phase = np.array([[1, 1, 2], [1, 1, 3]])
    assert default_stuff(phase) == (1,)  # no background: the largest phase
    assert default_stuff(np.where(phase == 3, 0, phase)) == (0,)
    assert default_stuff(phase, void=(1,)) in ((2,), (3,))
    p = panoptic_from_phases(phase, None)
    assert [c["isthing"] for c in p.categories] == [False, True, True]
    p = panoptic_from_phases(phase, None, stuff=(2, 3))
    assert sum(not s["isthing"] for s in p.info) == 2
    with pytest.raises(InputError, match="phase map"):
        panoptic_from_phases(np.zeros((2, 2, 2), int))
    with pytest.raises(InputError, match="shape"):
        panoptic_from_phases(phase, np.zeros((3, 3), int))


# ------------------------------------------------- files


def test_write_read_round_trip_and_json_structure(tmp_path):
    mic = make_micrograph((64, 80), n_particles=10, radius=(3.0, 8.0), seed=5)
    p = panoptic_from_phases(mic.phases, mic.instances, names=mic.phase_names)
    p.segments[p.segments > 0] += 300  # ids above 255 use the G channel
    for s in p.info:
        s["id"] += 300
    write_panoptic(p, tmp_path / "a_panoptic.png", tmp_path / "a_panoptic.json", file_name="a.tif")
    back = read_panoptic(tmp_path / "a_panoptic.png", tmp_path / "a_panoptic.json")
    assert np.array_equal(back.segments, p.segments) and back.segments.dtype == np.int32
    assert back.info == p.info and back.categories == p.categories
    doc = json.loads((tmp_path / "a_panoptic.json").read_text())
    assert doc["images"][0] == {"id": 0, "file_name": "a.tif", "height": 64, "width": 80}
    (ann,) = doc["annotations"]
    assert ann["file_name"] == "a_panoptic.png"
    import imageio.v3 as iio

    rgb = iio.imread(tmp_path / "a_panoptic.png")
    assert rgb.shape == (64, 80, 3) and rgb.dtype == np.uint8
    rgb = rgb.astype(np.int64)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    present, area = np.unique(ids[ids > 0], return_counts=True)
    seg = sorted(ann["segments_info"], key=lambda s: s["id"])
    assert [s["id"] for s in seg] == present.tolist()
    assert [s["area"] for s in seg] == area.tolist()
    assert set(seg[0]) == {"id", "category_id", "area", "bbox", "iscrowd"}
    assert {c["isthing"] for c in doc["categories"]} == {0, 1}


def test_encode_decode_ids_and_bad_files(tmp_path):
    ids = np.array([[0, 1, 255, 256], [65535, 65536, 2**24 - 1, 123456]])
    assert np.array_equal(decode_ids(encode_ids(ids)), ids)
    with pytest.raises(InputError, match="segment ids"):
        encode_ids(np.array([[2**24]]))
    p = pan(*scene(particles=[A, C]))
    write_panoptic(p, tmp_path / "x.png", tmp_path / "x.json")
    doc = json.loads((tmp_path / "x.json").read_text())
    doc["annotations"][0]["segments_info"].pop()
    (tmp_path / "x.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="differ"):
        read_panoptic(tmp_path / "x.png", tmp_path / "x.json")
    (tmp_path / "y.json").write_text("{}")
    with pytest.raises(InputError, match="not a COCO panoptic JSON"):
        read_panoptic(tmp_path / "x.png", tmp_path / "y.json")


def test_finding_phase_maps_and_panoptic_maps_in_a_folder(tmp_path):
    from napari_samphase.core.image.io import write_tiff

    phase, inst = scene(particles=[A, B, C])
    assert read_phase_instance(tmp_path, "im") is None and load_panoptic(tmp_path, "im") is None
    write_tiff(tmp_path / "im_phases.tif", phase)
    got_phase, got_inst = read_phase_instance(tmp_path, "im")
    assert np.array_equal(got_phase, phase) and got_inst is None  # no labels: None
    write_tiff(tmp_path / "im_labels.tif", inst)
    got_phase, got_inst = read_phase_instance(tmp_path, "im")
    assert np.array_equal(got_phase, phase) and np.array_equal(got_inst, inst)
    truth = load_panoptic(tmp_path, "im")
    assert np.array_equal(truth.segments, pan(phase, inst).segments)
    # a panoptic pair: read as it is, void included
    void_phase = phase.copy()
    void_phase[9] = 7
    p = panoptic_from_phases(void_phase, inst, stuff=(0,), void=(7,))
    write_panoptic(p, tmp_path / "pp_panoptic.png", tmp_path / "pp_panoptic.json")
    got = load_panoptic(tmp_path, "pp")
    assert np.array_equal(got.segments, p.segments) and (got.segments[9] == 0).all()
    got_phase, got_inst = read_phase_instance(tmp_path, "pp", void_phase=7)
    assert np.array_equal(got_phase, void_phase) and np.array_equal(got_inst > 0, inst > 0)
    (tmp_path / "_phases.tif").touch()  # no stem: not an image
    (tmp_path / "im_overlay.png").touch()
    assert panoptic_stems(tmp_path) == ["im", "pp"]


# ------------------------------------------------- unsupervised phase ids


def test_phase_ids_are_matched_to_classes_before_pq():
    mic = make_micrograph((80, 80), n_particles=10, n_phases=3, radius=(4.0, 10.0), seed=1)
    perm = np.array([4, 3, 1, 2])  # matrix -> 4, phase 1 -> 3, ...
    pred_phase = perm[mic.phases]
    pred_inst = np.where(mic.instances > 0, mic.instances + 40, 0)
    m = panoptic_quality_arrays(pred_phase, pred_inst, mic.phases, mic.instances)
    assert m["pq"] == 1.0 and m["matching"] == {4: 0, 3: 1, 1: 2, 2: 3}
    assert m["unmatched"] == [] and isinstance(m["counts"], PQCounts)
    raw = panoptic_quality_arrays(pred_phase, pred_inst, mic.phases, mic.instances, matching=None)
    assert raw["pq"] < 0.5
    # a surplus cluster: part of the matrix gets an id of its own; one-to-one leaves
    # it unmatched, its pixels in no predicted segment
    surplus = pred_phase.copy()
    surplus[:10][mic.phases[:10] == 0] = 7
    one = panoptic_quality_arrays(surplus, pred_inst, mic.phases, mic.instances)
    assert one["unmatched"] == [7] and one["per_category"][1]["pq"] == 1.0
    matrix = (mic.phases == 0).sum()
    lost = (surplus == 7).sum()
    assert one["per_category"][0]["sq"] == pytest.approx((matrix - lost) / matrix)
    many = panoptic_quality_arrays(
        surplus, pred_inst, mic.phases, mic.instances, matching="many_to_one"
    )
    assert many["matching"][7] == 0 and many["pq"] == 1.0
    with pytest.raises(InputError, match="matching"):
        panoptic_quality_arrays(surplus, pred_inst, mic.phases, mic.instances, matching="best")


def test_match_phases_ignores_void_and_pq_of_phases_against_a_truth_file(tmp_path):
    phase, inst = scene(particles=[A, B, C])
    truth_phase = phase.copy()
    truth_phase[8:] = 9
    truth = panoptic_from_phases(truth_phase, inst, stuff=(0,), void=(9,))
    pred = np.where(phase == 1, 5, np.where(phase == 2, 6, 8))
    pred[8:] = 3  # an id only over void: takes no part
    mapped, mapping, unmatched = match_phases(pred, truth)
    assert mapping == {5: 1, 6: 2, 8: 0} and unmatched == [3]
    assert (mapped[8:] == -1).all()
    # many-to-one sends left-over ids to the class they overlap most: none here
    assert match_phases(pred, truth, "many_to_one")[2] == [3]
    write_panoptic(truth, tmp_path / "t.png", tmp_path / "t.json")
    m = panoptic_quality_of_phases(
        pred, inst, read_panoptic(tmp_path / "t.png", tmp_path / "t.json")
    )
    assert m["pq"] == 1.0 and (m["tp"], m["fp"], m["fn"]) == (4, 0, 0)


def test_counts_of_images_that_disagree_on_stuff_do_not_add_up():
    """A category cannot be stuff in one image and things in another: the pooled PQ
    would mix the two counts."""
    from napari_samphase.core.evaluation.panoptic import PQCounts

    a = PQCounts(tp={1: 1}, categories={1: {"name": "1", "isthing": True}})
    b = PQCounts(tp={1: 1}, categories={1: {"name": "1", "isthing": False}})
    with pytest.raises(InputError, match="stuff"):
        a + b
    assert (a + a).tp == {1: 2}
