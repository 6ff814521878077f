"""`xlmr verify SRC HF_FOLDER`: does a published folder match the original fairseq checkpoint?"""

from __future__ import annotations

from rich.markup import escape

from xlmr_tools.cli import console
from xlmr_tools.cli.options import (
    CacheDir,
    Debug,
    Device,
    DeviceName,
    DictPath,
    DtypeName,
    Ema,
    EncoderJson,
    Head,
    HfFolder,
    Json,
    Labels,
    Lang,
    Quiet,
    Report,
    Revision,
    SpmPath,
    Src,
    Texts,
    TextsFile,
    Token,
    Trust,
    Verbose,
    VerifyDtype,
    VerifyTol,
    VocabBpe,
)
from xlmr_tools.interrupts import deferred_interrupts
from xlmr_tools.render import terminal
from xlmr_tools.settings import Assets, HubAccess, Settings


def verify(
    src: Src,
    hf_folder: HfFolder,
    head: Head = None,
    text: Texts = None,
    texts_file: TextsFile = None,
    tol: VerifyTol = None,
    dtype: VerifyDtype = DtypeName.auto,
    device: Device = DeviceName.cpu,
    json_: Json = False,
    report: Report = None,
    quiet: Quiet = False,
    dict_path: DictPath = None,
    spm_path: SpmPath = None,
    encoder_json: EncoderJson = None,
    vocab_bpe: VocabBpe = None,
    labels: Labels = None,
    lang: Lang = None,
    trust: Trust = False,
    ema: Ema = False,
    revision: Revision = None,
    token: Token = None,
    cache_dir: CacheDir = None,
    verbose: Verbose = False,
    debug: Debug = False,
) -> None:
    """Compare config, every weight, the tokenizer and every layer's outputs (streamed one layer at a time)."""
    console.set_debug(debug)
    console.check_report_path(report)
    console.warn_if_trusting(trust)
    with deferred_interrupts():  # a signal inside torch's import can abort the process: deferred past it
        from xlmr_tools.compare.texts import read_texts
        from xlmr_tools.ops.verify import verify as verify_folder

    texts = read_texts(text, texts_file)
    settings = Settings(head, dtype.value, device.value, tol, texts, language=lang, trust=trust, ema=ema)
    assets = Assets(dict_path, spm_path, encoder_json, vocab_bpe, labels)
    hub_access = HubAccess(revision, token, cache_dir)
    if not quiet and not json_:
        console.texts_note(text, texts_file)
    with console.progress(quiet or json_) as progress:
        result = verify_folder(src, hf_folder, settings, assets, hub_access, progress=progress)
    data = result.to_dict()
    if report is not None:
        console.write_report(report, data, "verify")
    if json_:
        console.print_json(data)
    else:
        console.out.print(terminal.config_table(result.config, "config.json vs checkpoint"))
        if result.weights is not None:
            console.out.print(terminal.weights_table(result.weights.groups(), "weights through the map (after cast)"))
            console.name_lists(data["weights"])
        if result.load is not None:
            for problem in result.load.failures():
                console.out.print(f"[bold red]load:[/] {problem}", highlight=False)
        if result.tokenizer is not None:
            tk = result.tokenizer
            console.out.print(
                f"tokenizer: {'[green]ids equal[/]' if tk.ids_equal else '[bold red]ids differ[/]'} on "
                f"{escape(tk.counted())}; fairseq <mask> = {tk.mask_id}"
                + (f"; {escape(tk.first_mismatch)}" if tk.first_mismatch else "")
            )
            for row in tk.vocabulary:
                if not row.ok:
                    console.out.print(f"[bold red]tokenizer {row.item}:[/] {row.note}", highlight=False)
        if result.outputs is not None:
            o = result.outputs
            console.out.print(
                terminal.stage_table(
                    [r.to_dict() for r in o.rows],
                    f"outputs, streamed layer by layer ({o.dtype}, {o.texts} texts, {o.tokens} tokens, pads excluded"
                    f"{terminal.languages_note(o.languages)})",
                )
            )
            if verbose:
                console.out.print(terminal.performance_line(o.performance, o.dtype))
        for s in result.skipped if not result.ok else []:  # else the verdict line names them
            console.warn(f"not checked: {s}")
        for r in result.config:
            if not r.ok and r.note:
                console.out.print(f"[bold red]config:[/] {escape(r.note)}", highlight=False)
        if not result.ok:
            console.out.print(f"[bold red]verification failed[/]: {len(result.failures())} problem(s)")
        elif result.skipped:
            console.out.print(
                "[yellow]partially verified[/]: what was checked matches the checkpoint; not checked: "
                + escape("; ".join(result.skipped)),
                highlight=False,
            )
        else:
            console.out.print("[green]verified[/]: the folder matches the checkpoint")
    if not result.ok:
        console.exit_failed(f"{result.folder}: verification failed", result.failures())
