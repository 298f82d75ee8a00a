from edge_agent.cli import main

if __name__ == "__main__":  # guarded: model worker processes are spawned and re-import this
    main()
