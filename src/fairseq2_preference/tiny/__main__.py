from fairseq2_preference.tiny.assets import main

main()
