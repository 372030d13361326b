"""Network architectures in plain torch.nn.

Each module's attribute names are exactly the official checkpoint's keys, so
loading a published state dict is `load_state_dict` and nothing else.
"""
