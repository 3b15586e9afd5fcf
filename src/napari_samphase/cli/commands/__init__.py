"""One module per ``samphase`` subcommand; ``COMMANDS`` maps a name to its function."""

from __future__ import annotations

from napari_samphase.cli.commands.demo import cmd_demo
from napari_samphase.cli.commands.download import cmd_download
from napari_samphase.cli.commands.evaluate import cmd_evaluate
from napari_samphase.cli.commands.predict import cmd_predict
from napari_samphase.cli.commands.sample import cmd_sample
from napari_samphase.cli.commands.segment import cmd_segment
from napari_samphase.cli.commands.train import cmd_train

COMMANDS = {
    "segment": cmd_segment,
    "demo": cmd_demo,
    "download": cmd_download,
    "sample": cmd_sample,
    "evaluate": cmd_evaluate,
    "train": cmd_train,
    "predict": cmd_predict,
}
