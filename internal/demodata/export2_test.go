package demodata

func SetRotate(v bool) { rotate = v }
func SetNotes(a, b int) { notesMinChars, notesMaxChars = a, b }
