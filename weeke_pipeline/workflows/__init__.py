"""Nipype workflow factories (``init_*_wf``): they only wire interfaces, no global state."""
