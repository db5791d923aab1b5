"""Files: analysis folders (npz/csv/json), and later figures and session files."""
