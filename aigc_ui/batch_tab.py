"""Batch tab: a spreadsheet (CSV/XLSX, one row per video) plus the photos and recordings it names ->
one twin video per row, with progress over rows, Stop, the summary table and a zip to download.
Wires widgets to pipelines.batch; no model code here.

The rows render one after another in the server's process with its shared models (one batch at a time:
the "batch" queue), so a batch never takes the memory of a second set of models; big batches belong
to ``python -m pipelines.batch`` (a process per core, or a Ray cluster). The handlers are the top-level
functions below; ``build_tab`` only lays out and wires.
"""
from __future__ import annotations

import queue
import shutil
import threading
import time
import uuid
from pathlib import Path

import gradio as gr

from pipelines.batch import BatchConfig, RowResult, run_batch
from pipelines.batch.spreadsheet import SPREADSHEET_SUFFIXES
from pipelines.core.errors import UserError

from .common import StudioContext, TabHandles, bind, friendly_errors, language_of, show_notices
from .i18n import add_strings, say, t

TAB = "batch"
TABLE_COLUMNS = ["row", "name", "status", "duration", "output", "error"]

add_strings(
    en={
        "tab.batch": "Batch videos",
        "batch.intro": "One twin video per row of a spreadsheet. The first row names the columns: **photo** (a file you add below, or a saved profile's name), **script** or **audio** (a recording file you add below), and optionally **voice**, **language**, **subtitles** (yes/no) and **name**. CSV (UTF-8, UTF-16 or GB18030) or Excel (.xlsx). Rows already made with the same inputs are skipped, so running the same sheet again continues a stopped batch. Rows render one at a time here; for hundreds of videos use `python -m pipelines.batch` (a worker per core, or a Ray cluster).",
        "batch.sheet": "Spreadsheet (.csv or .xlsx)",
        "batch.files": "Photos and recordings the rows name",
        "batch.consent": "I have the right to animate every face in this spreadsheet (the people are me, or they gave permission)",
        "batch.run": "Make the videos",
        "batch.summary": "Summary",
        "batch.zip": "All videos and the summary (zip)",
        "batch.status": "Status",
        "batch.need_sheet": "Please add a spreadsheet (.csv or .xlsx).",
        "batch.need_consent": "Please tick the consent box (you must have the right to animate every face in the batch).",
        "batch.bad_file": "'{name}' is not a spreadsheet: use a .csv or .xlsx file.",
        "batch.progress": "Row {row}: {status} ({done} of {total})",
        "batch.done": "Done: {done} made, {skipped} already made, {failed} failed, of {total} rows, in {seconds:.0f} s.",
        "batch.stopped": "Stopped: {done} made, {skipped} already made, {failed} failed. Run the same spreadsheet again to continue.",
        "batch.status.done": "done",
        "batch.status.skipped": "already made",
        "batch.status.failed": "failed",
        "batch.status.stopped": "stopped",
    },
    zh={
        "tab.batch": "批量视频",
        "batch.intro": "表格的每一行生成一段数字分身视频。第一行是列名：**photo**（在下方添加的照片文件，或已保存档案的名字）、**script** 或 **audio**（在下方添加的录音文件），以及可选的 **voice**、**language**、**subtitles**（是/否）和 **name**。支持 CSV（UTF-8、UTF-16 或 GB18030）和 Excel（.xlsx）。相同输入已生成过的行会被跳过，所以再次运行同一表格即可继续已停止的批量任务。这里逐行渲染；要生成成百上千段视频，请使用 `python -m pipelines.batch`（每核一个工作进程，或 Ray 集群）。",
        "batch.sheet": "表格（.csv 或 .xlsx）",
        "batch.files": "表格中提到的照片和录音",
        "batch.consent": "我有权让表格中的每一张脸动起来（是我本人，或已获得本人许可）",
        "batch.run": "生成视频",
        "batch.summary": "汇总",
        "batch.zip": "全部视频和汇总（zip）",
        "batch.status": "状态",
        "batch.need_sheet": "请添加一个表格（.csv 或 .xlsx）。",
        "batch.need_consent": "请勾选同意框（你必须有权让批量任务中的每一张脸动起来）。",
        "batch.bad_file": "“{name}”不是表格：请使用 .csv 或 .xlsx 文件。",
        "batch.progress": "第 {row} 行：{status}（{done}/{total}）",
        "batch.done": "完成：共 {total} 行，新生成 {done} 段，已存在 {skipped} 段，失败 {failed} 行，用时 {seconds:.0f} 秒。",
        "batch.stopped": "已停止：新生成 {done} 段，已存在 {skipped} 段，失败 {failed} 行。再次运行同一表格即可继续。",
        "batch.status.done": "完成",
        "batch.status.skipped": "已存在",
        "batch.status.failed": "失败",
        "batch.status.stopped": "已停止",
    },
)


# ---------------------------------------------------------------- handlers
def table_row(result: RowResult, lang: str) -> list:
    """One line of the summary table, in the user's language."""
    return [result.row, result.name, say(f"batch.status.{result.status}", lang), result.duration or "",
            result.output.name if result.output else "", result.error]


def prepare_folder(ctx: StudioContext, spreadsheet: str, files: list[str] | None,
                   outputs_dir: Path | None = None) -> tuple[Path, Path]:
    """The spreadsheet and the uploaded files side by side in a new folder of this batch (the rows name
    files by their file names); returns (spreadsheet copy, folder for the videos)."""
    source = Path(spreadsheet)
    if source.suffix.lower() not in SPREADSHEET_SUFFIXES:
        raise UserError(say("batch.bad_file", "en", name=source.name), zh=say("batch.bad_file", "zh", name=source.name))
    outputs_dir = outputs_dir or ctx.runtime.outputs_dir
    folder = outputs_dir / "batch" / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    inputs = folder / "inputs"
    inputs.mkdir(parents=True)
    for path in files or []:
        shutil.copyfile(path, inputs / Path(path).name)
    sheet = inputs / source.name
    shutil.copyfile(source, sheet)
    return sheet, folder / "videos"


@friendly_errors
def run_batch_job(ctx: StudioContext, spreadsheet, files, consent, request: gr.Request, progress=gr.Progress()):
    """The Run button: yields (summary table, status, zip) as rows finish."""
    lang = language_of(request)
    if not spreadsheet:
        raise UserError(say("batch.need_sheet", "en"), zh=say("batch.need_sheet", "zh"))
    if not consent:
        raise UserError(say("batch.need_consent", "en"), zh=say("batch.need_consent", "zh"))
    ctx.sessions.check_input(request, spreadsheet, *(files or []))
    runtime = ctx.runtime_for(request)  # this person's folder: their saved profiles, their videos
    sheet, out_dir = prepare_folder(ctx, spreadsheet, files, runtime.outputs_dir)
    config = BatchConfig(sheet, out_dir, workers=0, language=lang)  # in this process, with the app's models
    events: queue.Queue = queue.Queue()
    outcome: dict = {}
    rows: list[list] = []

    with ctx.jobs.running(request, TAB) as stop:
        def work() -> None:
            try:
                outcome["result"] = run_batch(config, runtime=runtime, stop=stop,
                                              on_progress=lambda f, text: events.put(("progress", f)),
                                              on_row=lambda r: events.put(("row", r)))
            except BaseException as exc:  # noqa: BLE001 - handed to the UI thread, which shows it
                outcome["error"] = exc
            finally:
                events.put(("end", None))

        worker = threading.Thread(target=work, name="batch-tab", daemon=True)
        worker.start()
        fraction = 0.0
        while True:
            kind, value = events.get()
            if kind == "end":
                break
            if kind == "progress":
                fraction = value
                continue
            rows.append(table_row(value, lang))
            status = say("batch.progress", lang, row=value.row, status=say(f"batch.status.{value.status}", lang),
                         done=len(rows), total="?" if fraction <= 0 else max(len(rows), round(len(rows) / fraction)))
            progress(fraction, desc=status)
            yield rows, status, None
        worker.join()
    if "error" in outcome:
        raise outcome["error"]
    result = outcome["result"]
    show_notices(result.notices, lang)
    rows = sorted(rows, key=lambda r: r[0])
    key = "batch.stopped" if result.stopped else "batch.done"
    message = say(key, lang, done=result.done, skipped=result.skipped, failed=result.failed, total=result.total_rows,
                  seconds=result.seconds)
    yield rows, message, str(result.zip_path) if result.zip_path else None


def stop_batch(ctx: StudioContext, request: gr.Request) -> None:
    ctx.jobs.stop(request, TAB)  # the row being rendered stops; the rows made so far are kept


# ---------------------------------------------------------------- layout and wiring
def build_tab(ctx: StudioContext) -> TabHandles:
    gr.Markdown(t("batch.intro"))
    with gr.Row():
        with gr.Column(scale=2):
            sheet = gr.File(label=t("batch.sheet"), file_types=[".csv", ".xlsx"], type="filepath")
            files = gr.File(label=t("batch.files"), file_count="multiple", type="filepath",
                            file_types=["image", "audio"])
            consent = gr.Checkbox(label=t("batch.consent"), value=False)
            with gr.Row():
                run = gr.Button(t("batch.run"), variant="primary")
                stop = gr.Button(t("common.stop"), variant="stop")
        with gr.Column(scale=3):
            status = gr.Markdown(label=t("batch.status"))
            table = gr.Dataframe(headers=TABLE_COLUMNS, label=t("batch.summary"), interactive=False, wrap=True,
                                 column_widths=["7%", "13%", "11%", "10%", "24%", "35%"])
            archive = gr.File(label=t("batch.zip"), interactive=False)
    run.click(bind(run_batch_job, ctx), [sheet, files, consent], [table, status, archive], api_name="run_batch",
              show_progress="full", show_progress_on=[status], **ctx.concurrency("batch"))  # the table stays visible
    stop.click(bind(stop_batch, ctx), None, None, queue=False, api_visibility="private")
    return TabHandles()
