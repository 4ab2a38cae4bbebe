"""The paper's claims (arXiv:2312.07395, Figs 2-5 and Table 3) checked under the settings that decide them.

`memory.py` defines the memory claims and evaluates each over the attention kernel, the per-device batch
and the model size, from the same FakeTensorMode estimates as `vfbench estimate` (`grid.py`); `rules.py`
turns the settings where a claim holds into a verdict and a region; `accuracy.py` reads the proxy
findings; `table.py` writes the reproduction table.
"""
