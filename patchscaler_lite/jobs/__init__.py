"""File-level jobs behind the commands: inputs checked first, outputs written atomically.

Each job takes values (paths, configs, a device), never an argparse namespace; cli/ parses and calls.
"""
