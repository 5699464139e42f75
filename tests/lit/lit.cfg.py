# lit configuration for cnnc's golden tests: `RUN:` lines call cnnc and pipe into FileCheck.
import os
import lit.formats

config.name = "cnnc"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".cnn", ".test"]
config.excludes = ["Inputs"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(lit_config.params.get("build_dir", "."), "lit-out")

cnnc = lit_config.params.get("cnnc")
filecheck = lit_config.params.get("filecheck", "FileCheck")
if not cnnc:
    lit_config.fatal("pass --param cnnc=PATH")
# `cnnc plot` must be the first argument, so it gets its own substitution (before %cnnc, its prefix).
config.substitutions.append(("%cnnc-plot", cnnc + " plot"))
config.substitutions.append(("%cnnc", cnnc + " --color=never"))
config.substitutions.append(("FileCheck", filecheck))
config.substitutions.append(("%nets", os.path.join(os.path.dirname(os.path.dirname(config.test_source_root)), "nets")))
config.environment["NO_COLOR"] = "1"
