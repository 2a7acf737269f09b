"""`bridgezoo run` (its options are `bridgezoo.run.options.RunConfig`'s fields) and `bridgezoo restore`."""

from __future__ import annotations

import json


def cmd_run(args) -> int:
    """A new run from the options given (every other one takes its RunConfig default), or (--resume) the saved run
    with the options given, which must agree with the saved ones."""
    from pathlib import Path

    from bridgezoo.run import RunConfig, run, saved_config
    from bridgezoo.run.options import from_namespace

    given = from_namespace(args)  # only what was given: every run option's parsed default is None
    if not args.resume:
        run(RunConfig(**given), resume=False)
        return 0
    out = given.get("out") or RunConfig(**given).resolve(_has_gpu()).out
    saved = saved_config(Path(out))
    run(RunConfig.from_saved(saved, **(given | {"out": out})), resume=True)
    return 0


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def restore_targets(inputs, out) -> list[tuple]:
    """[(input file, output PNG)] for files and folders (searched recursively, hidden entries skipped).

    A folder's images keep their path relative to it under `out`; a file given alone goes to `out/STEM.png`.
    Where two inputs would share an output, the name of the folder they were found in (`x/flower.png`,
    `y/flower.png`) and then their extension (`a_png.png`, `a_jpg.png`) tell them apart; what still clashes is an
    error, raised before anything is written.
    """
    from pathlib import Path

    from bridgezoo.data import DataError
    from bridgezoo.data.io import is_image

    found = []  # (file, relative path without suffix, name of the folder it was given in or found in)
    for name in inputs:
        p = Path(name)
        if p.is_dir():
            files = sorted(q for q in p.rglob("*") if q.is_file() and is_image(q)
                           and not any(part.startswith(".") for part in q.relative_to(p).parts))
            found += [(q, q.relative_to(p).with_suffix(""), p.resolve().name) for q in files]
        elif p.is_file():
            found.append((p, Path(p.stem), p.resolve().parent.name))
        else:
            raise DataError(f"{p}: no such file or folder")
    if not found:
        raise DataError(f"no images found in {', '.join(map(str, inputs))}")

    def clashes(names):
        count: dict = {}
        for n in names:
            count[n] = count.get(n, 0) + 1
        return {n for n, c in count.items() if c > 1}

    names = [rel for _, rel, _ in found]
    same = clashes(names)
    folders_of = {n: {folder for (_, _, folder), m in zip(found, names) if m == n} for n in same}
    names = [Path(folder) / n if n in same and len(folders_of[n]) > 1 else n for (_, _, folder), n in zip(found, names)]
    same = clashes(names)
    names = [n.with_name(f"{n.name}_{f.suffix[1:].lower()}") if n in same else n for (f, _, _), n in zip(found, names)]
    same = clashes(names)
    if same:
        listing = "; ".join(", ".join(str(f) for (f, _, _), n in zip(found, names) if n == s) for s in sorted(same))
        raise DataError(f"these inputs would be written to the same output file: {listing}; restore them separately")
    return [(f, Path(out) / n.with_name(n.name + ".png")) for (f, _, _), n in zip(found, names)]


STAMP_KEY = "bridgezoo-restore"  # the PNG text chunk that marks an output of `bridgezoo restore`


def restore_stamp(source, weights_sha256: str, **settings) -> str:
    """What an output of `restore` records about how it was made (JSON, in its PNG text chunk STAMP_KEY): the input
    file (resolved path and size), the weights (SHA-256 of the file) and every setting that changes the pixels.
    `--skip-existing` skips an existing output only when its stamp equals the one it would write."""
    from pathlib import Path

    source = Path(source).resolve()
    return json.dumps({"input": str(source), "input_bytes": source.stat().st_size, "weights_sha256": weights_sha256,
                       **settings}, sort_keys=True)


def cmd_restore(args) -> int:
    import hashlib
    from pathlib import Path

    import torch
    from tqdm.auto import tqdm

    from bridgezoo.run.conditioning import set_tasks, task_names
    from bridgezoo.data import DataError, read_image, write_png
    from bridgezoo.data.io import png_text
    from bridgezoo.run.evaluate import restore, to01
    from bridgezoo.run.options import check_tiles
    from bridgezoo.memory import NotEnoughMemory, out_of_memory
    from bridgezoo.progress import tqdm_disable
    from bridgezoo.run import load_model, resolve_device

    if args.steps is not None and args.steps < 1:
        raise DataError(f"--steps must be at least 1, got {args.steps}")
    if args.tile is not None and args.tile < 0:
        raise DataError(f"--tile must be a size in pixels, or 0 for whole images; got {args.tile}")
    check_tiles(args.tile, args.tile_overlap)
    device = resolve_device(args.device)
    targets = restore_targets(args.inputs, args.out)
    existing = [str(o) for _, o in targets if o.exists()]
    if existing and not (args.overwrite or args.skip_existing):
        raise DataError(f"{len(existing)} output file(s) exist already, e.g. {', '.join(existing[:3])}; "
                        "choose another --out, pass --skip-existing to resume an interrupted restore, or "
                        "--overwrite")
    weights = Path(args.weights) if args.weights else Path(args.run) / "model.safetensors"
    bridge, model, cfg = load_model(weights, device=device)
    sampler = args.sampler or cfg.sampler
    steps = args.steps or cfg.nfe
    digest = hashlib.sha256()
    with open(weights, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    stamps = {o: restore_stamp(f, digest.hexdigest(), sampler=sampler, steps=steps, seed=args.seed, task=args.task,
                               precision=args.precision, tile=args.tile, tile_overlap=args.tile_overlap)
              for f, o in targets}
    skipped = 0
    if existing and args.skip_existing:  # resume: skip what this same restore wrote, refuse anything else
        theirs = {o: png_text(o).get(STAMP_KEY) for _, o in targets if o.exists()}
        foreign = [str(o) for o, s in theirs.items() if s is None]
        other = [str(o) for o, s in theirs.items() if s is not None and s != stamps[o]]
        if foreign or other:
            raise DataError("--skip-existing skips only outputs this same restore wrote; "
                            + "; ".join(f"{len(files)} {why}, e.g. {', '.join(files[:3])}" for files, why in (
                                (foreign, "output file(s) were not written by `bridgezoo restore`"),
                                (other, "were written by a restore of other inputs, weights or settings"))
                                if files)
                            + ". Choose another --out, or pass --overwrite to replace them")
        skipped = len(theirs)
        targets = [(f, o) for f, o in targets if o not in theirs]
    known = task_names(model)
    if known and args.task is None:
        raise DataError(f"{weights}: the model is task-conditioned; say the inputs' task with --task "
                        f"({', '.join(known)})")
    if args.task is not None:
        if not known:
            raise DataError(f"--task {args.task}: {weights} is a blind model (trained without --task-conditioned)")
        set_tasks(model, args.task)  # an unknown task is an error naming the model's tasks
    bridge.get_sampler(sampler)  # an unknown sampler or option fails before anything is read or written
    images = [(f, o, read_image(f)) for f, o in targets]  # read (and validate) every input before writing anything
    for f, o, img in tqdm(images, desc="restore", disable=tqdm_disable(args.quiet)):
        lq = torch.from_numpy(img.transpose(2, 0, 1)).float().to(device) * 2 - 1
        say = None if args.quiet else (lambda line, f=f: tqdm.write(f"{f}: {line}"))
        try:  # --tile absent: whole images where they fit in the free memory, else tiles (said in one line)
            res = restore(bridge, model, lq, nfe=steps, sampler=sampler, tile=args.tile,
                          overlap=args.tile_overlap, seed=args.seed, precision=args.precision, say=say)
        except (MemoryError, RuntimeError) as exc:
            if isinstance(exc, NotEnoughMemory) or not out_of_memory(exc):
                raise
            raise NotEnoughMemory(f"{f}: {device} ran out of memory restoring a {img.shape[1]}×{img.shape[0]} "
                                  f"image{f' in {args.tile}-pixel tiles' if args.tile else ''}; give a smaller "
                                  "--tile SIZE (or restore on another --device)") from exc
        write_png(o, to01(res), text={STAMP_KEY: stamps[o]})
    if not args.quiet:
        print(f"restored {len(images)} image(s) with {cfg.bridge}/{cfg.backbone} on {device} into {args.out}"
              + (f"; skipped {skipped} this restore had written already (--skip-existing)" if skipped else ""))
    return 0
