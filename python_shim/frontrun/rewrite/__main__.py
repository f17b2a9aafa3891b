"""``python -m frontrun.rewrite``: see ``frontrun.rewrite._launcher`` (and ``_inspect``)."""

if __name__ == "__main__":
    from frontrun.rewrite._launcher import main

    main()
