use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = riposte_web::cli::Cli::parse();
    let result = match cli.run_sync() {
        Some(result) => result,
        None => actix_web::rt::System::new().block_on(riposte_web::cli::run(cli)),
    };
    match result {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
