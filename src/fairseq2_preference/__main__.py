from fairseq2_preference.cli import main

main()
