"""Settings shared by the trial-structured tests (the 000006 session, the small simulation, the task map)."""

FILE_000006 = "dandi/000006/sub-anm369963/sub-anm369963_ses-20170228.nwb"
ALM_RESPONSES = {"align": "cue_start_time", "events": ["pole_in_time", "pole_out_time"], "conditions": ["type"],
                 "filter": "is_good == 1", "unsorted_spike_times": "sort", "regions": ["ALM"]}
SIM_RESPONSES = {"align": "cue_start_time", "events": ["pole_in_time", "pole_out_time"],
                 "conditions": ["type", "sample_strength"], "filter": "is_good == 1", "window_ms": [-3000, 1000],
                 "bin_ms": 50}
TASK_MAP = {"periods": {"sample": "pole_in_time", "delay": "pole_out_time", "response": "cue_start_time"},
            "values": {"lick left": "left", "lick right": "right"}}
SMALL_TRIAL_SIMULATION = {"n_trials": 120, "units_per_region": 12, "network": {"hidden": 32, "steps": 300}}
