"""Links between the window and the Qt-free fleet core: one loop thread, answers as queued signals."""
