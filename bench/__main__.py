from bench.cli import main

if __name__ == "__main__":  # a guard: --parallel workers (spawned) import this module as __mp_main__
    main()
