package demodata

func SetRotate(v bool) { rotate = v }
