import hookpkg


def value():
    return "MARK"


def parent_value():
    return hookpkg.value()


if __name__ == "__main__":
    print("sub as main:", value())
