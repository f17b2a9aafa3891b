def value():
    return "MARK"
